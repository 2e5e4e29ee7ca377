# Test stack for LocalStack's free edition without Docker: the modules that apply there
# (model store, network, observability). Applied by tests/integration/test_localstack.py.

terraform {
  required_version = ">= 1.9"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100, < 6.0"
    }
  }
}

variable "endpoint_url" {
  description = "LocalStack gateway URL, e.g. http://127.0.0.1:4566."
  type        = string
}

variable "model_bundle_dir" {
  description = "Folder with model.tflite, labels.txt and model.json."
  type        = string
}

provider "aws" {
  region                      = "us-east-1"
  access_key                  = "test"
  secret_key                  = "test"
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = true
  s3_use_path_style           = true

  endpoints {
    cloudwatch = var.endpoint_url
    ec2        = var.endpoint_url
    events     = var.endpoint_url
    iam        = var.endpoint_url
    kms        = var.endpoint_url
    logs       = var.endpoint_url
    s3         = var.endpoint_url
    sns        = var.endpoint_url
    sts        = var.endpoint_url
  }
}

module "model_store" {
  source = "../../../modules/model_store"

  name_prefix            = "ls-test"
  model_bundle_dir       = var.model_bundle_dir
  enable_tls_only_policy = false
  force_destroy          = true
}

module "network" {
  source = "../../../modules/network"

  name_prefix = "ls-test"
  flow_logs = {
    kms_key_arn = module.model_store.kms_key_arn
  }
}

module "observability" {
  source = "../../../modules/observability"

  name_prefix               = "ls-test"
  kms_key_arn               = module.model_store.kms_key_arn
  predict_function_name     = "ls-test-predict"
  create_xray_sampling_rule = false
}

output "model_bucket" {
  description = "Model bucket."
  value       = module.model_store.bucket_name
}

output "model_object_keys" {
  description = "Keys of the uploaded bundle."
  value       = module.model_store.model_object_keys
}

output "kms_key_arn" {
  description = "Key the bucket is encrypted with."
  value       = module.model_store.kms_key_arn
}

output "dashboard_name" {
  description = "CloudWatch dashboard."
  value       = module.observability.dashboard_name
}

output "vpc_id" {
  description = "VPC of the network module."
  value       = module.network.vpc_id
}
