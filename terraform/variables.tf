################################################################################
# Provider and emulator
################################################################################

variable "region" {
  description = "AWS region of the whole stack."
  type        = string
  default     = "eu-west-1"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as eu-west-1."
  }
}

variable "emulator_url" {
  description = "Base URL of an AWS emulator (moto, LocalStack) that every service in emulator_services is sent to; null on AWS. Given at apply time, e.g. -var emulator_url=http://127.0.0.1:5123."
  type        = string
  default     = null

  validation {
    condition     = var.emulator_url == null || can(regex("^https?://[^/]+/?$", var.emulator_url))
    error_message = "emulator_url must be a base URL such as http://127.0.0.1:5000."
  }
}

variable "emulator_services" {
  description = "Provider endpoint names sent to emulator_url when it is set."
  type        = list(string)
  default     = ["apigateway", "batch", "cloudwatch", "ec2", "ecr", "events", "iam", "kms", "lambda", "logs", "s3", "sns", "sqs", "sts", "wafv2", "xray"]
  nullable    = false

  validation {
    condition = alltrue([for s in var.emulator_services : contains(
      ["apigateway", "batch", "cloudwatch", "ec2", "ecr", "events", "iam", "kms", "lambda", "logs", "s3", "sns", "sqs", "sts", "wafv2", "xray"], s
    )])
    error_message = "emulator_services may only name apigateway, batch, cloudwatch, ec2, ecr, events, iam, kms, lambda, logs, s3, sns, sqs, sts, wafv2, xray."
  }
}

variable "provider_endpoints" {
  description = "Explicit endpoint per provider service name (same names as emulator_services); wins over emulator_url."
  type        = map(string)
  default     = {}
  nullable    = false
}

variable "access_key" {
  description = "Static access key, for emulators only (\"test\"). Null: the provider's usual credential chain."
  type        = string
  default     = null
  sensitive   = true
}

variable "secret_key" {
  description = "Static secret key, for emulators only (\"test\"). Null: the provider's usual credential chain."
  type        = string
  default     = null
  sensitive   = true
}

variable "skip_credentials_validation" {
  description = "Skip the provider's STS credential check (emulators)."
  type        = bool
  default     = false
  nullable    = false
}

variable "skip_metadata_api_check" {
  description = "Skip the EC2 instance metadata lookup for credentials (emulators)."
  type        = bool
  default     = false
  nullable    = false
}

variable "skip_requesting_account_id" {
  description = "Skip looking up the account id through IAM/STS at provider start (emulators)."
  type        = bool
  default     = false
  nullable    = false
}

variable "s3_use_path_style" {
  description = "Address S3 as http://host/bucket instead of http://bucket.host (emulators)."
  type        = bool
  default     = false
  nullable    = false
}

################################################################################
# Stack
################################################################################

variable "name_prefix" {
  description = "Prefix of every resource name."
  type        = string
  default     = "inferstack"
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,21}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-23 characters of lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "tags" {
  description = "Tags added to every resource (Project and ManagedBy are always set)."
  type        = map(string)
  default     = {}
  nullable    = false
}

variable "architecture" {
  description = "Instruction set of the functions and their layer: arm64 or x86_64."
  type        = string
  default     = "arm64"
  nullable    = false

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture must be arm64 or x86_64."
  }
}

variable "runtime" {
  description = "Python runtime of the functions (ai-edge-litert needs the glibc of python3.12 or newer). The layer is built for python3.13 (layers/build.py); modules/realtime_api refuses a layer whose build manifest names another runtime."
  type        = string
  default     = "python3.13"
  nullable    = false

  validation {
    condition     = contains(["python3.12", "python3.13"], var.runtime)
    error_message = "runtime must be python3.12 or python3.13."
  }
}

variable "predict_zip_path" {
  description = "Real-time function zip. Null: build/dist/predict.zip (built by layers/build.py)."
  type        = string
  default     = null
}

variable "dispatcher_zip_path" {
  description = "Batch dispatcher function zip. Null: build/dist/dispatcher.zip."
  type        = string
  default     = null
}

variable "layer_zip_path" {
  description = "Runtime dependency layer zip. Null: build/dist/layer-<architecture>.zip."
  type        = string
  default     = null
}

variable "model_bundle_dir" {
  description = "Model bundle folder (model.tflite, labels.txt, model.json) uploaded to the model bucket. Null: build/model/resnet50-int8 (built by `inferstack model build`)."
  type        = string
  default     = null
}

variable "canary" {
  description = "Canary rollout of a candidate model bundle (a folder like model_bundle_dir, with another name or version in its model.json): uploaded beside the primary, published as its own version of the predict function, and sent `weight` of the live alias' requests (0 = none, a rollback; below 1). Needs the primary deployed first. Promote: set model_bundle_dir to the candidate's folder and remove canary. Null (the default): no candidate."
  type = object({
    bundle_dir = string
    weight     = number
  })
  default = null

  validation {
    condition     = var.canary == null || try(var.canary.weight >= 0 && var.canary.weight < 1, false)
    error_message = "canary.weight is the share of requests sent to the candidate: at least 0 (a rollback) and below 1 (to send everything, promote it: model_bundle_dir = the candidate's folder, no canary)."
  }
}

variable "force_destroy" {
  description = "Let `terraform destroy` delete the model and data buckets with their objects. For throw-away environments."
  type        = bool
  default     = false
  nullable    = false
}

variable "log_retention_days" {
  description = "Retention of every log group of the stack, in days."
  type        = number
  default     = 365
  nullable    = false
}

################################################################################
# Emulator gaps: on for AWS, off in environments/local.tfvars
################################################################################

variable "enable_tls_only_policy" {
  description = "Deny non-TLS requests to the model and data buckets (moto answers 403 to object calls once such a policy is attached)."
  type        = bool
  default     = true
  nullable    = false
}

variable "create_xray_sampling_rule" {
  description = "Create the X-Ray sampling rule (moto has no X-Ray API)."
  type        = bool
  default     = true
  nullable    = false
}

variable "create_batch_service_role" {
  description = "Give the Batch compute environment an explicit service role (moto requires one). Off on AWS, where it uses the service-linked role AWSServiceRoleForBatch, which AWS Batch creates when it is missing."
  type        = bool
  default     = false
  nullable    = false
}

variable "provisioned_concurrency" {
  description = "Provisioned concurrency of the real-time function's alias; 0 (the default) = off. An opt-in: it is billed while idle, and Lambda refuses it in a new account whose reduced concurrency quota leaves nothing above the unreserved minimum (moto has no API for it either)."
  type        = number
  default     = 0
  nullable    = false
}

################################################################################
# Network
################################################################################

variable "network" {
  description = <<-EOT
    Network settings, passed to the network module (null fields take the module's defaults): create a VPC
    (CIDR, zone count, or zone IDs; zones lacking an endpoint service, Lambda or Fargate are skipped, see
    excluded_zone_ids) or bring one (vpc_id, subnet_ids, route_table_ids), endpoints, flow logs.
    Interface endpoints: null interface_endpoints = what the components in the VPC need (ecr.api, ecr.dkr
    and logs for Batch on Fargate), plus additional_interface_endpoints; a list replaces that set.
  EOT
  type = object({
    create_vpc                     = optional(bool)
    vpc_cidr                       = optional(string)
    az_count                       = optional(number)
    availability_zone_ids          = optional(list(string))
    excluded_zone_ids              = optional(list(string))
    vpc_id                         = optional(string)
    subnet_ids                     = optional(list(string))
    route_table_ids                = optional(list(string))
    create_vpc_endpoints           = optional(bool)
    interface_endpoints            = optional(list(string))
    additional_interface_endpoints = optional(list(string), [])
    enable_flow_logs               = optional(bool)
  })
  default  = {}
  nullable = false
}

################################################################################
# Real-time API
################################################################################

variable "predict" {
  description = "Real-time function settings (null fields take the realtime_api module's defaults: memory_size 3008, the most a new account may set; reserved_concurrency -1, nothing reserved). Larger memory (e.g. 3538 = 2 full vCPUs) and a reservation are opt-ins once the account's Lambda quotas allow them."
  type = object({
    memory_size          = optional(number)
    timeout              = optional(number)
    reserved_concurrency = optional(number)
    enable_xray_tracing  = optional(bool)
    log_level            = optional(string)
  })
  default  = {}
  nullable = false
}

variable "api" {
  description = "REST API settings passed to the realtime_api module (null fields take its defaults): stage, authorization (NONE = API key, or AWS_IAM = SigV4-signed requests), api_key_required, throttling, quota, binary_media_types (also the image types the function accepts), execution logging_level."
  type = object({
    stage_name             = optional(string)
    authorization          = optional(string)
    api_key_required       = optional(bool)
    binary_media_types     = optional(list(string))
    logging_level          = optional(string)
    throttling_rate_limit  = optional(number)
    throttling_burst_limit = optional(number)
    key_rate_limit         = optional(number)
    key_burst_limit        = optional(number)
    quota_limit            = optional(number)
    quota_period           = optional(string)
  })
  default  = {}
  nullable = false
}

variable "create_api_gateway_account" {
  description = "Set the region's API Gateway CloudWatch Logs role (an IAM role with AmazonAPIGatewayPushToCloudWatchLogs, and aws_api_gateway_account), without which the API stage and its logs cannot be created in an account that never set it. An account-wide, per-region setting shared by every REST API there: switch it off if the account already has one (a landing zone, another stack), since this stack would replace it."
  type        = bool
  default     = true
  nullable    = false
}

variable "enable_waf" {
  description = "Protect the API with a WAFv2 web ACL."
  type        = bool
  default     = true
  nullable    = false
}

variable "waf" {
  description = "Web ACL settings passed to the realtime_api module (null fields take its defaults)."
  type = object({
    rate_limit                = optional(number)
    rate_limit_window_seconds = optional(number)
    max_body_bytes            = optional(number)
    enable_logging            = optional(bool)
  })
  default  = {}
  nullable = false
}

################################################################################
# Batch
################################################################################

variable "batch" {
  description = "Batch settings passed to the batch module (null fields take its defaults): worker image tag (null = the project version in pyproject.toml) or a full worker image URI pinned by tag or digest, images per array child, array size limit, job resources, compute environment size, and the dispatcher with its SQS event source mapping (how many S3 events one invocation gathers and for how long)."
  type = object({
    worker_image_tag = optional(string)
    worker_image     = optional(string)
    images_per_child = optional(number)
    max_array_size   = optional(number)
    job = optional(object({
      vcpu     = optional(number)
      memory   = optional(number)
      timeout  = optional(number)
      attempts = optional(number)
    }), {})
    compute = optional(object({
      max_vcpus = optional(number)
    }), {})
    dispatcher = optional(object({
      memory_size                     = optional(number)
      timeout                         = optional(number)
      maximum_concurrency             = optional(number)
      reserved_concurrency            = optional(number)
      batch_size                      = optional(number)
      maximum_batching_window_seconds = optional(number)
      log_level                       = optional(string)
    }), {})
  })
  default  = {}
  nullable = false
}

################################################################################
# Observability
################################################################################

variable "alarm_email_addresses" {
  description = "E-mail addresses notified of alarms (each must confirm its subscription)."
  type        = list(string)
  default     = []
  nullable    = false
}
