variable "name_prefix" {
  description = "Prefix of every resource name (KMS alias, bucket prefix, log group names the key may encrypt)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-32 characters of lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "tags" {
  description = "Tags added to every resource of the module."
  type        = map(string)
  default     = {}
  nullable    = false
}

variable "create_kms_key" {
  description = "Create a customer managed KMS key (with rotation) for the bucket, its objects and, when granted below, log groups and SNS topics. When false, kms_key_arn must be given."
  type        = bool
  default     = true
  nullable    = false
}

variable "kms_key_arn" {
  description = "ARN of an existing KMS key to use when create_kms_key is false."
  type        = string
  default     = null

  validation {
    condition     = var.create_kms_key || var.kms_key_arn != null
    error_message = "kms_key_arn is required when create_kms_key is false."
  }

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)."
  }
}

variable "kms_key_deletion_window_days" {
  description = "Waiting period, in days, before a deleted KMS key is destroyed."
  type        = number
  default     = 30
  nullable    = false

  validation {
    condition     = var.kms_key_deletion_window_days >= 7 && var.kms_key_deletion_window_days <= 30
    error_message = "kms_key_deletion_window_days must be between 7 and 30."
  }
}

variable "kms_key_service_access" {
  description = <<-EOT
    AWS services the created key policy lets use the key, each limited to this account and,
    where the service supports it, to resources named with name_prefix:
    logs (CloudWatch Logs groups "<name_prefix>*" and "/aws/*/<name_prefix>*"),
    cloudwatch_alarms (alarms publishing to an encrypted SNS topic),
    eventbridge (rules publishing to an encrypted SNS topic),
    s3_notifications (S3 event notifications to an encrypted SQS queue).
  EOT
  type = object({
    logs              = optional(bool, true)
    cloudwatch_alarms = optional(bool, true)
    eventbridge       = optional(bool, true)
    s3_notifications  = optional(bool, true)
  })
  default  = {}
  nullable = false
}

variable "bucket_name" {
  description = "Name of the model bucket. When null, a unique name starting with \"<name_prefix>-models-\" is generated."
  type        = string
  default     = null

  validation {
    condition     = var.bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name (3-63 lowercase letters, digits, dots and hyphens)."
  }
}

variable "force_destroy" {
  description = "Allow destroying the bucket while it still holds objects (all versions are deleted). Meant for throw-away environments."
  type        = bool
  default     = false
  nullable    = false
}

variable "enable_tls_only_policy" {
  description = "Attach a bucket policy that denies every request not made over TLS. Keep true on AWS; the moto emulator answers 403 to object calls once such a policy is attached."
  type        = bool
  default     = true
  nullable    = false
}

variable "enable_access_logging" {
  description = "Write S3 server access logs of the model bucket to access_logging.target_bucket."
  type        = bool
  default     = false
  nullable    = false
}

variable "access_logging" {
  description = "Where S3 server access logs go when enable_access_logging is true."
  type = object({
    target_bucket = optional(string)
    target_prefix = optional(string, "s3-access/models/")
  })
  default  = {}
  nullable = false

  validation {
    condition     = !var.enable_access_logging || var.access_logging.target_bucket != null
    error_message = "access_logging.target_bucket is required when enable_access_logging is true."
  }
}

variable "noncurrent_version_expiration_days" {
  description = "Days after which noncurrent object versions (replaced or deleted model files) are removed."
  type        = number
  default     = 90
  nullable    = false

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1 && floor(var.noncurrent_version_expiration_days) == var.noncurrent_version_expiration_days
    error_message = "noncurrent_version_expiration_days must be a whole number of at least 1."
  }
}

variable "upload_model_bundle" {
  description = "Upload model.tflite, labels.txt and model.json from model_bundle_dir to \"<model_prefix>/<name>/<version>/\" (name and version read from model.json)."
  type        = bool
  default     = true
  nullable    = false
}

variable "model_bundle_dir" {
  description = "Local folder holding the model bundle (model.tflite, labels.txt, model.json). Required when upload_model_bundle is true."
  type        = string
  default     = null

  validation {
    condition     = !var.upload_model_bundle || var.model_bundle_dir != null
    error_message = "model_bundle_dir is required when upload_model_bundle is true."
  }

  validation {
    condition = var.model_bundle_dir == null || alltrue([
      for f in ["model.tflite", "labels.txt", "model.json"] : fileexists("${coalesce(var.model_bundle_dir, ".")}/${f}")
    ])
    error_message = "model_bundle_dir must contain model.tflite, labels.txt and model.json (build one with `inferstack model build`)."
  }
}

variable "model_prefix" {
  description = "Key prefix under which model bundles are stored, without leading or trailing slash."
  type        = string
  default     = "models"
  nullable    = false

  validation {
    condition     = can(regex("^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*$", var.model_prefix))
    error_message = "model_prefix must be one or more S3-safe path segments without leading or trailing slash (e.g. \"models\")."
  }
}

variable "candidate_bundle_dir" {
  description = "Local folder of a second model bundle, the candidate of a canary rollout, uploaded beside the primary to \"<model_prefix>/<name>/<version>/\" from its own model.json (another name or version than the primary's). Null (the default): no candidate. Needs upload_model_bundle."
  type        = string
  default     = null

  validation {
    condition     = var.candidate_bundle_dir == null || var.upload_model_bundle
    error_message = "candidate_bundle_dir needs upload_model_bundle = true (the candidate is uploaded beside the primary bundle)."
  }

  validation {
    condition = var.candidate_bundle_dir == null || alltrue([
      for f in ["model.tflite", "labels.txt", "model.json"] : fileexists("${coalesce(var.candidate_bundle_dir, ".")}/${f}")
    ])
    error_message = "candidate_bundle_dir must contain model.tflite, labels.txt and model.json."
  }
}
