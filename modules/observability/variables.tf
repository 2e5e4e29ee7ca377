variable "name_prefix" {
  description = "Prefix of every resource name (dashboard, alarms, topic, sampling rule)."
  type        = string
  nullable    = false

  validation {
    # The X-Ray sampling rule name ("<prefix>-sampling") may be at most 32 characters.
    condition     = can(regex("^[a-z][a-z0-9-]{1,21}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 3-23 characters of lowercase letters, digits and hyphens, starting with a letter."
  }
}

variable "tags" {
  description = "Tags added to every resource of the module."
  type        = map(string)
  default     = {}
  nullable    = false
}

variable "kms_key_arn" {
  description = "KMS key encrypting the alarm topic. Its key policy must let cloudwatch.amazonaws.com (and events.amazonaws.com for Batch job notifications) use it, as the model_store module's key does. Required when create_sns_topic is true."
  type        = string
  default     = null

  validation {
    condition     = !var.create_sns_topic || var.kms_key_arn != null
    error_message = "kms_key_arn is required when create_sns_topic is true (alarms cannot publish to a topic encrypted with the AWS managed SNS key)."
  }

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "create_sns_topic" {
  description = "Create the encrypted SNS topic alarms notify. When false, alarms notify sns_topic_arn (or nothing when it is null)."
  type        = bool
  default     = true
  nullable    = false
}

variable "sns_topic_arn" {
  description = "Existing SNS topic for alarm notifications, used when create_sns_topic is false."
  type        = string
  default     = null

  validation {
    condition     = var.sns_topic_arn == null || can(regex("^arn:aws[a-z-]*:sns:", var.sns_topic_arn))
    error_message = "sns_topic_arn must be an SNS topic ARN."
  }
}

variable "alarm_email_addresses" {
  description = "E-mail addresses subscribed to the created alarm topic (each must confirm the subscription)."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for a in var.alarm_email_addresses : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", a))])
    error_message = "alarm_email_addresses must be e-mail addresses."
  }
}

variable "create_dashboard" {
  description = "Create the CloudWatch dashboard."
  type        = bool
  default     = true
  nullable    = false
}

variable "create_alarms" {
  description = "Create the CloudWatch alarms for the parts whose names are given."
  type        = bool
  default     = true
  nullable    = false
}

variable "create_xray_sampling_rule" {
  description = "Create an X-Ray sampling rule for the stack's traces. The moto emulator has no X-Ray API: turn it off there."
  type        = bool
  default     = true
  nullable    = false
}

variable "enable_batch_job_failure_notifications" {
  description = "Send \"Batch Job State Change\" events of FAILED jobs in the job queue (job_queue_name) to the alarm topic (EventBridge rule)."
  type        = bool
  default     = true
  nullable    = false
}

# --- What to watch: every name is optional so the module can watch part of a stack. ---

variable "api_name" {
  description = "Name of the API Gateway REST API (dimension ApiName). Null: no API widgets or alarms."
  type        = string
  default     = null
}

variable "api_stage_name" {
  description = "Stage of the REST API (dimension Stage). Required with api_name."
  type        = string
  default     = null

  validation {
    condition     = var.api_name == null || var.api_stage_name != null
    error_message = "api_stage_name is required when api_name is set."
  }
}

variable "predict_function_name" {
  description = "Name of the real-time Lambda function. Null: no real-time function widgets or alarms."
  type        = string
  default     = null
}

variable "predict_log_group_name" {
  description = "Log group of the real-time function, queried by the dashboard for cold-start init durations (REPORT lines). Null: no such widget."
  type        = string
  default     = null
}

variable "dispatcher_function_name" {
  description = "Name of the batch dispatcher Lambda function. Null: no dispatcher widgets or alarms."
  type        = string
  default     = null
}

variable "queue_name" {
  description = "Name of the SQS queue of S3 events feeding the dispatcher. Null: no queue widgets."
  type        = string
  default     = null
}

variable "dlq_name" {
  description = "Name of the dead-letter queue. Null: no DLQ widget or alarm."
  type        = string
  default     = null
}

variable "job_queue_name" {
  description = "Name of the AWS Batch job queue: shown on the dashboard, and its FAILED jobs are notified. Null: neither."
  type        = string
  default     = null
}

variable "job_queue_arn" {
  description = "ARN of the job queue named job_queue_name, matched by the failed-job event rule. Null: built from the name, this region and account."
  type        = string
  default     = null

  validation {
    condition     = var.job_queue_arn == null || can(regex("^arn:aws[a-z-]*:batch:", var.job_queue_arn))
    error_message = "job_queue_arn must be an AWS Batch job queue ARN."
  }
}

# --- Metrics the functions emit in Embedded Metric Format ---

variable "metric_namespace" {
  description = "CloudWatch namespace of the functions' own (EMF) metrics."
  type        = string
  default     = "Inferstack"
  nullable    = false

  validation {
    condition     = length(var.metric_namespace) > 0 && !startswith(var.metric_namespace, "AWS/")
    error_message = "metric_namespace must be non-empty and must not start with \"AWS/\"."
  }
}

variable "realtime_metrics" {
  description = "EMF metric names of the real-time function and the value of its \"service\" dimension (POWERTOOLS_SERVICE_NAME)."
  type = object({
    service            = optional(string, "inferstack-predict")
    predictions        = optional(string, "PredictionCount")
    errors             = optional(string, "ErrorCount")
    decode_latency     = optional(string, "DecodeLatency")
    preprocess_latency = optional(string, "PreprocessLatency")
    infer_latency      = optional(string, "InferLatency")
    total_latency      = optional(string, "TotalLatency")
    top_probability    = optional(string, "TopProbability")
  })
  default  = {}
  nullable = false
}

variable "batch_metrics" {
  description = "EMF metric names of the batch dispatcher and worker and the values of their \"service\" dimension."
  type = object({
    dispatcher_service = optional(string, "inferstack-dispatcher")
    jobs_submitted     = optional(string, "JobsSubmitted")
    images_dispatched  = optional(string, "ImagesDispatched")
    worker_service     = optional(string, "inferstack-batch-worker")
    images_processed   = optional(string, "BatchImagesClassified")
    images_failed      = optional(string, "BatchImagesFailed")
  })
  default  = {}
  nullable = false
}

variable "alarm_thresholds" {
  description = <<-EOT
    Alarm thresholds: api_5xx_rate (fraction of requests, 0-1), api_p99_latency_ms,
    lambda_errors and lambda_throttles (per period), dlq_messages (visible messages),
    batch_images_failed (per period); period_seconds, evaluation_periods and
    datapoints_to_alarm ("M of N") apply to every alarm.
  EOT
  type = object({
    api_5xx_rate        = optional(number, 0.01)
    api_p99_latency_ms  = optional(number, 3000)
    lambda_errors       = optional(number, 1)
    lambda_throttles    = optional(number, 1)
    dlq_messages        = optional(number, 1)
    batch_images_failed = optional(number, 1)
    period_seconds      = optional(number, 60)
    evaluation_periods  = optional(number, 5)
    datapoints_to_alarm = optional(number, 3)
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.alarm_thresholds.api_5xx_rate > 0 && var.alarm_thresholds.api_5xx_rate <= 1
    error_message = "alarm_thresholds.api_5xx_rate is a fraction of requests: greater than 0 and at most 1."
  }

  validation {
    condition     = contains([10, 30, 60], var.alarm_thresholds.period_seconds) || (var.alarm_thresholds.period_seconds >= 60 && var.alarm_thresholds.period_seconds % 60 == 0)
    error_message = "alarm_thresholds.period_seconds must be 10, 30 or a multiple of 60."
  }

  validation {
    condition     = var.alarm_thresholds.datapoints_to_alarm >= 1 && var.alarm_thresholds.datapoints_to_alarm <= var.alarm_thresholds.evaluation_periods
    error_message = "alarm_thresholds.datapoints_to_alarm must be between 1 and evaluation_periods."
  }

  validation {
    condition = alltrue([for v in [var.alarm_thresholds.api_p99_latency_ms, var.alarm_thresholds.lambda_errors, var.alarm_thresholds.lambda_throttles,
    var.alarm_thresholds.dlq_messages, var.alarm_thresholds.batch_images_failed] : v > 0])
    error_message = "alarm thresholds must be greater than 0."
  }
}

variable "xray_sampling" {
  description = "X-Ray sampling rule: traces per second always sampled (reservoir_size), fraction sampled beyond it (fixed_rate), rule priority (lower wins)."
  type = object({
    reservoir_size = optional(number, 1)
    fixed_rate     = optional(number, 0.05)
    priority       = optional(number, 1000)
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.xray_sampling.fixed_rate >= 0 && var.xray_sampling.fixed_rate <= 1
    error_message = "xray_sampling.fixed_rate must be between 0 and 1."
  }

  validation {
    condition     = var.xray_sampling.priority >= 1 && var.xray_sampling.priority <= 9999 && var.xray_sampling.reservoir_size >= 0
    error_message = "xray_sampling.priority must be 1-9999 and reservoir_size at least 0."
  }
}

variable "dashboard_period_seconds" {
  description = "Default period of the dashboard's graphs."
  type        = number
  default     = 60
  nullable    = false

  validation {
    condition     = var.dashboard_period_seconds >= 60 && var.dashboard_period_seconds % 60 == 0
    error_message = "dashboard_period_seconds must be a multiple of 60."
  }
}

variable "canary" {
  description = <<-EOT
    A canary rollout of the real-time function (predict_function_name): the ModelSha256 dimension values (the first
    12 hex digits of each model's sha256, as the function emits them) of the primary and the candidate. Creates the
    candidate's alarms (error rate above the primary's, p99 latency relative to the primary's, a candidate that answers
    nothing but errors, i.e. a model that does not load) and a dashboard row comparing the two. Null: none of them.
  EOT
  type = object({
    primary_sha256   = string
    candidate_sha256 = string
    # Alarm when the candidate's error rate exceeds the primary's by more than this fraction.
    error_rate_margin = optional(number, 0.02)
    # Alarm when the candidate's p99 total latency is more than this multiple of the primary's.
    p99_latency_ratio = optional(number, 1.5)
  })
  default = null

  validation {
    condition     = var.canary == null || try(alltrue([for s in [var.canary.primary_sha256, var.canary.candidate_sha256] : can(regex("^[0-9a-f]{12,64}$", s))]) && var.canary.primary_sha256 != var.canary.candidate_sha256, false)
    error_message = "canary.primary_sha256 and candidate_sha256 must be two different lower-case hex sha256 values (12 to 64 digits)."
  }

  validation {
    condition     = var.canary == null || try(var.canary.error_rate_margin > 0 && var.canary.error_rate_margin < 1 && var.canary.p99_latency_ratio > 1, false)
    error_message = "canary.error_rate_margin must be a fraction in (0, 1) and canary.p99_latency_ratio greater than 1."
  }
}
