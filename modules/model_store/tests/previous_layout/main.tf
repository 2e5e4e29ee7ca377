# The model store's bundle objects as a state written before they were keyed by S3 key holds
# them: the primary's keyed by file name, the candidate's in aws_s3_object.candidate. Only
# upgrade.tftest.hcl uses it.

terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100, < 6.0"
    }
  }
}

variable "bucket" {
  description = "The model bucket's name."
  type        = string
}

variable "kms_key_arn" {
  description = "The key the objects are encrypted with."
  type        = string
}

locals {
  files = toset(["labels.txt", "model.json", "model.tflite"])
}

resource "aws_s3_object" "bundle" {
  for_each = local.files

  bucket     = var.bucket
  key        = "models/fixture-model/3/${each.key}"
  kms_key_id = var.kms_key_arn
}

resource "aws_s3_object" "candidate" {
  for_each = local.files

  bucket     = var.bucket
  key        = "models/fixture-model/4/${each.key}"
  kms_key_id = var.kms_key_arn
}

output "keys" {
  description = "S3 keys of the objects by their address of then."
  value = merge(
    { for f, o in aws_s3_object.bundle : "bundle/${f}" => o.key },
    { for f, o in aws_s3_object.candidate : "candidate/${f}" => o.key },
  )
}
