locals {
  # Endpoint overrides: every service in emulator_services points at emulator_url, then any
  # explicit provider_endpoints entry wins. Empty on AWS.
  endpoints = merge(
    var.emulator_url == null ? {} : { for s in var.emulator_services : s => var.emulator_url },
    var.provider_endpoints,
  )
}

provider "aws" {
  region = var.region

  # Only for emulators: on AWS leave these null and use the usual credential chain.
  access_key = var.access_key
  secret_key = var.secret_key

  skip_credentials_validation = var.skip_credentials_validation
  skip_metadata_api_check     = var.skip_metadata_api_check
  skip_requesting_account_id  = var.skip_requesting_account_id
  s3_use_path_style           = var.s3_use_path_style

  dynamic "endpoints" {
    for_each = length(local.endpoints) > 0 ? [local.endpoints] : []
    content {
      apigateway = lookup(endpoints.value, "apigateway", null)
      batch      = lookup(endpoints.value, "batch", null)
      cloudwatch = lookup(endpoints.value, "cloudwatch", null)
      ec2        = lookup(endpoints.value, "ec2", null)
      ecr        = lookup(endpoints.value, "ecr", null)
      events     = lookup(endpoints.value, "events", null)
      iam        = lookup(endpoints.value, "iam", null)
      kms        = lookup(endpoints.value, "kms", null)
      lambda     = lookup(endpoints.value, "lambda", null)
      logs       = lookup(endpoints.value, "logs", null)
      s3         = lookup(endpoints.value, "s3", null)
      sns        = lookup(endpoints.value, "sns", null)
      sqs        = lookup(endpoints.value, "sqs", null)
      sts        = lookup(endpoints.value, "sts", null)
      wafv2      = lookup(endpoints.value, "wafv2", null)
      xray       = lookup(endpoints.value, "xray", null)
    }
  }
}
