# The model store on its own: a KMS key, an encrypted versioned bucket and one uploaded model
# bundle. Useful to publish models for functions deployed elsewhere, and it applies on
# LocalStack's free edition too:
#   terraform apply -var model_bundle_dir=../../build/model/resnet50-int8 \
#     -var endpoint_url=http://127.0.0.1:4566

terraform {
  required_version = ">= 1.9"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100, < 6.0"
    }
  }
}

variable "region" {
  description = "AWS region."
  type        = string
  default     = "eu-west-1"
}

variable "endpoint_url" {
  description = "Emulator URL for KMS, S3, STS and IAM (null on AWS)."
  type        = string
  default     = null
}

variable "model_bundle_dir" {
  description = "Folder with model.tflite, labels.txt and model.json."
  type        = string
}

locals {
  emulated = var.endpoint_url != null
}

provider "aws" {
  region                      = var.region
  access_key                  = local.emulated ? "test" : null
  secret_key                  = local.emulated ? "test" : null
  skip_credentials_validation = local.emulated
  skip_metadata_api_check     = local.emulated
  skip_requesting_account_id  = local.emulated
  s3_use_path_style           = local.emulated

  dynamic "endpoints" {
    for_each = local.emulated ? [var.endpoint_url] : []
    content {
      kms = endpoints.value
      s3  = endpoints.value
      sts = endpoints.value
      iam = endpoints.value
    }
  }
}

module "model_store" {
  source = "../../modules/model_store"

  name_prefix      = "models-example"
  model_bundle_dir = var.model_bundle_dir
  model_prefix     = "models"
  tags             = { Example = "model_store_only" }

  # Emulators answer 403 to object calls once a TLS-only policy exists; AWS keeps it.
  enable_tls_only_policy = !local.emulated
  force_destroy          = local.emulated
}

output "model_uri" {
  description = "Where the bundle was uploaded."
  value       = module.model_store.model_uri
}

output "model_prefix_arn" {
  description = "Grant s3:GetObject on this ARN to whatever loads the model."
  value       = module.model_store.model_prefix_arn
}

output "kms_key_arn" {
  description = "Grant kms:Decrypt on this key to whatever loads the model."
  value       = module.model_store.kms_key_arn
}
