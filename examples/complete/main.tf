# Every module composed in a stack of your own, with settings the root stack leaves at their
# defaults: an existing VPC brought in, a WAF with a tighter rate limit, a larger batch fleet,
# alarms to an e-mail address. Paths are relative to this folder.

terraform {
  required_version = ">= 1.9"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100, < 6.0"
    }
  }
}

provider "aws" {
  region = "eu-west-1"
}

variable "vpc_id" {
  description = "Existing VPC with private subnets."
  type        = string
  default     = "vpc-0123456789abcdef0"
}

variable "subnet_ids" {
  description = "Private subnets of the VPC, one per availability zone."
  type        = list(string)
  default     = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
}

variable "route_table_ids" {
  description = "Route tables of those subnets (for the S3 gateway endpoint)."
  type        = list(string)
  default     = ["rtb-0123456789abcdef0"]
}

locals {
  name = "acme-vision"
  tags = { Team = "vision", Environment = "staging" }
  dist = "${path.root}/../../build/dist"
}

module "model_store" {
  source = "../../modules/model_store"

  name_prefix      = local.name
  tags             = local.tags
  model_bundle_dir = "${path.root}/../../build/model/resnet50-int8"
}

module "network" {
  source = "../../modules/network"

  name_prefix     = local.name
  tags            = local.tags
  create_vpc      = false
  vpc_id          = var.vpc_id
  subnet_ids      = var.subnet_ids
  route_table_ids = var.route_table_ids
  flow_logs       = { kms_key_arn = module.model_store.kms_key_arn }
  # The S3 gateway endpoint reaches these buckets only (and ECR's image layers).
  s3_bucket_arns = [module.model_store.bucket_arn, module.batch.data_bucket_arn]
}

module "realtime_api" {
  source = "../../modules/realtime_api"

  name_prefix       = local.name
  tags              = local.tags
  function_zip_path = "${local.dist}/predict.zip"
  layer_zip_path    = "${local.dist}/layer-arm64.zip"
  architecture      = "arm64"
  runtime           = "python3.13"
  memory_size       = 3008
  # Opt-ins for an account whose Lambda concurrency quota leaves room above the 100 unreserved
  # AWS keeps (a new account's does not): reserved_concurrency = 40, provisioned_concurrency = 2.
  model_uri          = module.model_store.model_uri
  model_sha256       = module.model_store.model_sha256
  model_bucket_arn   = module.model_store.bucket_arn
  kms_key_arn        = module.model_store.kms_key_arn
  subnet_ids         = module.network.subnet_ids
  security_group_ids = [module.network.lambda_security_group_id]
  api                = { throttling_rate_limit = 200, throttling_burst_limit = 400 }
  waf                = { rate_limit = 500 }
}

module "batch" {
  source = "../../modules/batch"

  name_prefix         = local.name
  tags                = local.tags
  kms_key_arn         = module.model_store.kms_key_arn
  dispatcher_zip_path = "${local.dist}/dispatcher.zip"
  layer_arns          = [module.realtime_api.layer_arn]
  architecture        = "arm64"
  runtime             = "python3.13"
  subnet_ids          = module.network.subnet_ids
  security_group_ids  = [module.network.batch_security_group_id]
  model_uri           = module.model_store.model_uri
  model_sha256        = module.model_store.model_sha256
  model_bucket_arn    = module.model_store.bucket_arn
  images_per_child    = 1000
  compute             = { max_vcpus = 128 }
  # Build for module.batch.worker_image_platform, push to module.batch.worker_image.
  worker_image_tag = "0.1.0"
}

module "observability" {
  source = "../../modules/observability"

  name_prefix              = local.name
  tags                     = local.tags
  kms_key_arn              = module.model_store.kms_key_arn
  alarm_email_addresses    = ["vision-oncall@example.com"]
  api_name                 = module.realtime_api.api_name
  api_stage_name           = module.realtime_api.stage_name
  predict_function_name    = module.realtime_api.function_name
  predict_log_group_name   = module.realtime_api.log_group_names["function"]
  dispatcher_function_name = module.batch.dispatcher_function_name
  queue_name               = module.batch.queue_name
  dlq_name                 = module.batch.dlq_name
  job_queue_name           = module.batch.job_queue_name
  alarm_thresholds         = { api_p99_latency_ms = 1500 }

  # Watch the metric names the functions and the worker are configured to emit.
  realtime_metrics = { service = module.realtime_api.telemetry.service }
  batch_metrics = {
    dispatcher_service = module.batch.telemetry.dispatcher_service
    worker_service     = module.batch.telemetry.worker_service
  }
}

output "predict_url" {
  description = "POST images here with the x-api-key header."
  value       = module.realtime_api.predict_url
}

output "data_bucket" {
  description = "Upload images under input/."
  value       = module.batch.data_bucket_name
}

output "worker_image" {
  description = "Push the worker image here (the repository's tags are immutable)."
  value       = module.batch.worker_image
}

output "worker_image_platform" {
  description = "docker build --platform of the worker image."
  value       = module.batch.worker_image_platform
}

output "dashboard_name" {
  description = "CloudWatch dashboard."
  value       = module.observability.dashboard_name
}
