###############################################################################
# Naming, tags, encryption
###############################################################################

variable "name_prefix" {
  description = "Prefix of every resource name (bucket `<prefix>-data-<account>`, queue `<prefix>-s3-events`, function `<prefix>-dispatcher`, Batch `<prefix>-worker`...). Lower-case letters, digits and hyphens, at most 32 characters."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 2-32 characters of a-z, 0-9 and '-', start with a letter and not end with '-'."
  }
}

variable "tags" {
  description = "Tags added to every taggable resource of the module (and propagated to Batch jobs and their tasks)."
  type        = map(string)
  default     = {}
  nullable    = false
}

variable "kms_key_arn" {
  description = "KMS key for the data bucket (SSE-KMS), the log groups, the ECR repository, the function environment and (with queue.encryption = \"KMS\") the queues. Its key policy must let CloudWatch Logs (logs.<region>.amazonaws.com) use it, and for KMS queues also s3.amazonaws.com (GenerateDataKey, Decrypt)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)."
  }
}

variable "log_retention_days" {
  description = "Retention of the dispatcher and worker log groups, in days (0 = never expire)."
  type        = number
  default     = 365
  nullable    = false

  validation {
    condition     = contains([0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, ...)."
  }
}

variable "enable_xray_tracing" {
  description = "Active X-Ray tracing on the dispatcher function."
  type        = bool
  default     = true
  nullable    = false
}

###############################################################################
# Data bucket and queue
###############################################################################

variable "data_bucket" {
  description = <<-EOT
    Data bucket: images arrive under input/, results land under output/, manifests under manifests/.
    - name: bucket name; null = "<name_prefix>-data-<account id>".
    - force_destroy: let `terraform destroy` delete a non-empty bucket.
    - input_expiration_days / output_expiration_days / manifest_expiration_days: delete objects under
      input/, output/ and manifests/ that many days after creation; 0 = keep.
    - noncurrent_version_expiration_days: delete overwritten/deleted versions after that many days.
    - abort_incomplete_multipart_upload_days: abort unfinished multipart uploads.
    - access_log_bucket: bucket for S3 server access logs (prefix "<bucket name>/"); null = none.
  EOT
  type = object({
    name                                   = optional(string)
    force_destroy                          = optional(bool, false)
    input_expiration_days                  = optional(number, 0)
    output_expiration_days                 = optional(number, 90)
    manifest_expiration_days               = optional(number, 30)
    noncurrent_version_expiration_days     = optional(number, 7)
    abort_incomplete_multipart_upload_days = optional(number, 1)
    access_log_bucket                      = optional(string)
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.data_bucket.name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", coalesce(var.data_bucket.name, "-")))
    error_message = "data_bucket.name must be a valid S3 bucket name (3-63 characters of a-z, 0-9, '.', '-')."
  }

  validation {
    condition = alltrue([
      for d in [var.data_bucket.input_expiration_days, var.data_bucket.output_expiration_days, var.data_bucket.manifest_expiration_days] : d >= 0 && floor(d) == d
    ])
    error_message = "data_bucket.*_expiration_days must be whole numbers >= 0 (0 = keep)."
  }

  validation {
    condition     = var.data_bucket.noncurrent_version_expiration_days >= 1 && var.data_bucket.abort_incomplete_multipart_upload_days >= 1
    error_message = "data_bucket.noncurrent_version_expiration_days and abort_incomplete_multipart_upload_days must be >= 1."
  }

  validation {
    # A manifest must outlive the job that reads it: expiring manifests before outputs is fine, but not in under a day.
    condition     = var.data_bucket.manifest_expiration_days == 0 || var.data_bucket.manifest_expiration_days >= 2
    error_message = "data_bucket.manifest_expiration_days must be 0 (keep) or >= 2: running jobs read their manifests."
  }
}

variable "enable_tls_only_policy" {
  description = "Attach a bucket policy that denies every request not made over TLS. Off on moto, which answers 403 to object calls once it is attached."
  type        = bool
  default     = true
  nullable    = false
}

variable "queue" {
  description = <<-EOT
    S3 event queue and its dead-letter queue.
    - encryption: "SQS" (SQS-managed SSE) or "KMS" (kms_key_arn; the key policy must then allow s3.amazonaws.com).
    - max_receive_count: deliveries of a message before it moves to the DLQ.
    - message_retention_seconds / dlq_message_retention_seconds: how long messages are kept.
    - visibility_timeout_seconds: null = 6 x the dispatcher timeout (the AWS recommendation for event source mappings).
  EOT
  type = object({
    encryption                    = optional(string, "SQS")
    max_receive_count             = optional(number, 5)
    message_retention_seconds     = optional(number, 345600)
    dlq_message_retention_seconds = optional(number, 1209600)
    visibility_timeout_seconds    = optional(number)
  })
  default  = {}
  nullable = false

  validation {
    condition     = contains(["SQS", "KMS"], var.queue.encryption)
    error_message = "queue.encryption must be \"SQS\" or \"KMS\"."
  }

  validation {
    condition     = var.queue.max_receive_count >= 1 && var.queue.max_receive_count <= 1000
    error_message = "queue.max_receive_count must be between 1 and 1000."
  }

  validation {
    condition = alltrue([
      for s in [var.queue.message_retention_seconds, var.queue.dlq_message_retention_seconds] : s >= 60 && s <= 1209600
    ])
    error_message = "queue retention must be between 60 and 1209600 seconds."
  }

  validation {
    condition     = var.queue.visibility_timeout_seconds == null || try(var.queue.visibility_timeout_seconds >= 0 && var.queue.visibility_timeout_seconds <= 43200, false)
    error_message = "queue.visibility_timeout_seconds must be between 0 and 43200."
  }
}

###############################################################################
# Dispatcher function
###############################################################################

variable "dispatcher_zip_path" {
  description = "Path of the dispatcher function zip (handler `inferstack_dispatcher.handler.lambda_handler`)."
  type        = string
  nullable    = false

  validation {
    condition     = endswith(var.dispatcher_zip_path, ".zip")
    error_message = "dispatcher_zip_path must name a .zip file."
  }
}

variable "layer_arns" {
  description = "Layer version ARNs of the dispatcher (the runtime layer published by realtime_api, for example)."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = length(var.layer_arns) <= 5 && alltrue([for a in var.layer_arns : can(regex("^arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:layer:[A-Za-z0-9_-]+:[0-9]+$", a))])
    error_message = "layer_arns must be at most 5 layer version ARNs (arn:aws:lambda:<region>:<account>:layer:<name>:<version>)."
  }
}

variable "architecture" {
  description = "Instruction set of the dispatcher function and of the worker containers (Fargate runtime platform): \"arm64\" or \"x86_64\". Layers and the worker image must be built for it."
  type        = string
  default     = "arm64"
  nullable    = false

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture must be \"arm64\" or \"x86_64\"."
  }
}

variable "runtime" {
  description = "Lambda runtime of the dispatcher (python3.12 or newer): the runtime the layers in `layer_arns` were built for, like the real-time function's, so that they share a layer."
  type        = string
  default     = "python3.13"
  nullable    = false

  validation {
    condition     = contains(["python3.12", "python3.13"], var.runtime)
    error_message = "runtime must be \"python3.12\" or \"python3.13\"."
  }
}

variable "dispatcher" {
  description = <<-EOT
    Dispatcher function and its SQS event source mapping.
    - memory_size / timeout: of the function (it only lists, writes manifests and submits jobs).
    - maximum_concurrency: upper bound of concurrent dispatchers, set on the SQS event source mapping (2-1000;
      0 = no bound). It reserves nothing, so it deploys in a new account whose reduced Lambda concurrency quota
      leaves no room for a reservation (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html).
    - reserved_concurrency: concurrency reserved for the dispatcher; -1 (the default) reserves none. An opt-in for
      accounts with room above the unreserved minimum (100); at least maximum_concurrency (which must then be set).
    - batch_size / maximum_batching_window_seconds: how many S3 events one invocation receives and how long
      the mapping waits to fill a batch; larger batches mean fewer, larger array jobs.
    - in_vpc: run the function in subnet_ids. Its code then needs routes to S3 (the gateway endpoint) and to AWS Batch
      (a batch interface endpoint or NAT); the SQS event source mapping polls the queue outside the function, and
      its logs leave through the Lambda service.
  EOT
  type = object({
    memory_size                     = optional(number, 512)
    timeout                         = optional(number, 120)
    maximum_concurrency             = optional(number, 5)
    reserved_concurrency            = optional(number, -1)
    batch_size                      = optional(number, 100)
    maximum_batching_window_seconds = optional(number, 30)
    in_vpc                          = optional(bool, false)
    log_level                       = optional(string, "INFO")
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.dispatcher.memory_size >= 128 && var.dispatcher.memory_size <= 10240 && var.dispatcher.timeout >= 3 && var.dispatcher.timeout <= 900
    error_message = "dispatcher.memory_size must be 128-10240 MB and dispatcher.timeout 3-900 s."
  }

  validation {
    condition     = var.dispatcher.reserved_concurrency >= -1
    error_message = "dispatcher.reserved_concurrency must be -1 (unreserved) or >= 0."
  }

  validation {
    condition     = var.dispatcher.maximum_concurrency == 0 || (var.dispatcher.maximum_concurrency >= 2 && var.dispatcher.maximum_concurrency <= 1000 && floor(var.dispatcher.maximum_concurrency) == var.dispatcher.maximum_concurrency)
    error_message = "dispatcher.maximum_concurrency must be a whole number from 2 to 1000 (the SQS event source mapping's range), or 0 for no bound."
  }

  validation {
    condition     = var.dispatcher.reserved_concurrency <= 0 || (var.dispatcher.maximum_concurrency != 0 && var.dispatcher.maximum_concurrency <= var.dispatcher.reserved_concurrency)
    error_message = "dispatcher.maximum_concurrency must not exceed dispatcher.reserved_concurrency: the mapping would invoke more dispatchers than may run, and they would be throttled."
  }

  validation {
    condition     = var.dispatcher.batch_size >= 1 && var.dispatcher.batch_size <= 10000 && var.dispatcher.maximum_batching_window_seconds >= 0 && var.dispatcher.maximum_batching_window_seconds <= 300
    error_message = "dispatcher.batch_size must be 1-10000 and dispatcher.maximum_batching_window_seconds 0-300."
  }

  validation {
    condition     = var.dispatcher.batch_size <= 10 || var.dispatcher.maximum_batching_window_seconds >= 1
    error_message = "SQS event source mappings with batch_size > 10 need maximum_batching_window_seconds >= 1."
  }

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.dispatcher.log_level)
    error_message = "dispatcher.log_level must be one of DEBUG, INFO, WARNING, ERROR."
  }
}

###############################################################################
# Network (Batch on Fargate; the dispatcher with dispatcher.in_vpc)
###############################################################################

variable "subnet_ids" {
  description = "Private subnets of the Fargate tasks. They need routes to ECR, S3, KMS and CloudWatch Logs (VPC endpoints or NAT): tasks get no public IP."
  type        = list(string)
  nullable    = false

  validation {
    condition     = length(var.subnet_ids) > 0 && alltrue([for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "subnet_ids must be a non-empty list of subnet IDs (subnet-...)."
  }
}

variable "security_group_ids" {
  description = "Security groups of the Fargate tasks (and of the dispatcher with dispatcher.in_vpc)."
  type        = list(string)
  nullable    = false

  validation {
    condition     = length(var.security_group_ids) > 0 && alltrue([for s in var.security_group_ids : can(regex("^sg-[0-9a-f]+$", s))])
    error_message = "security_group_ids must be a non-empty list of security group IDs (sg-...)."
  }
}

###############################################################################
# Model, worker, Batch
###############################################################################

variable "model_uri" {
  description = "S3 URI of the model bundle prefix, `s3://<bucket>/<prefix>/`. The worker may read only this prefix."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/([^/]+/)*$", var.model_uri))
    error_message = "model_uri must look like s3://<bucket>/<prefix>/ (ending with '/')."
  }
}

variable "additional_model_uris" {
  description = "S3 URIs of other model bundle prefixes (`s3://<bucket>/<prefix>/`, in the bucket of `model_uri`) the worker may read besides `model_uri`: the bundles a job may name with MODEL_URI/MODEL_SHA256 container overrides (`inferstack batch submit --model-uri`), e.g. the candidate of a canary rollout. Each adds its prefix to the job role's s3:GetObject and s3:ListBucket grants, nothing else. Empty (the default): the worker reads `model_uri` only."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for u in var.additional_model_uris : can(regex("^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/([^/]+/)+$", u))])
    error_message = "additional_model_uris must each look like s3://<bucket>/<prefix>/ (a non-empty prefix, ending with '/')."
  }

  validation {
    condition     = alltrue([for u in var.additional_model_uris : split("/", trimprefix(u, "s3://"))[0] == split("/", trimprefix(var.model_uri, "s3://"))[0]])
    error_message = "additional_model_uris must be in the bucket of model_uri (model_bucket_arn, whose KMS key the job role may use)."
  }
}

variable "model_bucket_arn" {
  description = "ARN of the bucket named in `model_uri` (for IAM)."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.model_bucket_arn))
    error_message = "model_bucket_arn must be an S3 bucket ARN (arn:aws:s3:::<bucket>)."
  }

  validation {
    condition     = try(split(":::", var.model_bucket_arn)[1] == split("/", trimprefix(var.model_uri, "s3://"))[0], false)
    error_message = "model_bucket_arn must be the ARN of the bucket named in model_uri."
  }
}

variable "create_ecr_repository" {
  description = "Create the ECR repository `<name_prefix>-worker` for the worker image. With false, worker_image must be set."
  type        = bool
  default     = true
  nullable    = false
}

variable "ecr" {
  description = <<-EOT
    ECR repository settings.
    - immutable_tags: IMMUTABLE tags (default): a pushed tag always names the same image, so every child of a job
      runs the same code. Each build gets a new worker_image_tag.
    - keep_images: number of images kept (older ones expire); untagged images expire after untagged_expiration_days.
    - force_delete: let `terraform destroy` delete a repository that still holds images.
  EOT
  type = object({
    immutable_tags           = optional(bool, true)
    keep_images              = optional(number, 30)
    untagged_expiration_days = optional(number, 7)
    force_delete             = optional(bool, false)
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.ecr.keep_images >= 1 && var.ecr.untagged_expiration_days >= 1
    error_message = "ecr.keep_images and ecr.untagged_expiration_days must be >= 1."
  }
}

variable "worker_image_tag" {
  description = "Tag of the worker image in the module's repository: the job definition runs `<ecr_repository_url>:<worker_image_tag>` (output worker_image). A version or commit id, never \"latest\". Ignored when worker_image is set."
  type        = string
  default     = null

  validation {
    condition     = var.worker_image_tag == null || can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", coalesce(var.worker_image_tag, "-")))
    error_message = "worker_image_tag must be a Docker tag: 1-128 characters of letters, digits, '_', '.', '-', not starting with '.' or '-'."
  }

  validation {
    condition     = var.worker_image_tag != "latest"
    error_message = "worker_image_tag must not be \"latest\": name the build (a version or commit id) so that every child runs the same image."
  }

  validation {
    condition     = var.worker_image_tag != null || var.worker_image != null
    error_message = "Set worker_image_tag (the tag pushed to the module's repository) or worker_image (a full image URI)."
  }
}

variable "worker_image" {
  description = "Worker image URI pinned by tag or digest (`registry/repository:tag`, `registry/repository@sha256:<digest>` or both), instead of the module's repository. A private ECR image (`<account>.dkr.ecr.<region>.amazonaws.com/...`, any account or region) gets pull permission on its repository in the task execution role; for another account's repository its repository policy must also allow this account. Public images need no permission. null = `<ecr_repository_url>:<worker_image_tag>`."
  type        = string
  default     = null

  validation {
    condition     = var.worker_image != null || var.create_ecr_repository
    error_message = "worker_image is required when create_ecr_repository = false."
  }

  validation {
    # registry/repository, then :tag, @sha256:digest or both. Without either the registry would serve ":latest".
    condition     = var.worker_image == null || can(regex("^[a-z0-9][a-z0-9.:-]*(/[a-z0-9][a-z0-9._/-]*)?(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$", coalesce(var.worker_image, "-"))) && can(regex("(/[^/:@]+:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[a-f0-9]{64})$", coalesce(var.worker_image, "-")))
    error_message = "worker_image must be an image URI with a tag or a digest: registry/repository:tag or registry/repository@sha256:<64 hex digits>."
  }

  validation {
    condition     = var.worker_image == null || !can(regex(":latest(@|$)", coalesce(var.worker_image, "-")))
    error_message = "worker_image must not use the \"latest\" tag: pin a version tag or a digest."
  }
}

variable "create_batch_service_role" {
  description = "Create an IAM role with the AWSBatchServiceRole managed policy and pass it as the compute environment's service_role. Off (default, for AWS): the compute environment uses AWS Batch's service-linked role AWSServiceRoleForBatch, which AWS Batch creates in the account when it does not exist yet. On only for emulators: moto's CreateComputeEnvironment refuses a request without serviceRole."
  type        = bool
  default     = false
  nullable    = false
}

variable "images_per_child" {
  description = "IMAGES_PER_CHILD: images per array child (shard size) in the dispatcher and the worker."
  type        = number
  default     = 500
  nullable    = false

  validation {
    condition     = var.images_per_child >= 1 && var.images_per_child <= 100000 && floor(var.images_per_child) == var.images_per_child
    error_message = "images_per_child must be a whole number between 1 and 100000."
  }
}

variable "max_array_size" {
  description = "MAX_ARRAY_SIZE: most children of one array job (AWS Batch allows 2-10000); larger inputs are split into several jobs."
  type        = number
  default     = 10000
  nullable    = false

  validation {
    condition     = var.max_array_size >= 2 && var.max_array_size <= 10000 && floor(var.max_array_size) == var.max_array_size
    error_message = "max_array_size must be a whole number between 2 and 10000 (AWS Batch array job limits)."
  }
}

variable "job" {
  description = <<-EOT
    Worker job definition.
    - vcpu / memory (MiB): one of the Fargate combinations (0.25: 512-2048; 0.5: 1024-4096; 1: 2048-8192; 2: 4096-16384;
      4: 8192-30720, in 1024 steps; 8: 16384-61440 in 4096 steps; 16: 32768-122880 in 8192 steps).
    - timeout: attempt duration in seconds after which Batch stops a child (>= 60).
    - attempts: tries per child (1-10). Every failure is retried except the worker's deliberate exits 65 (bad manifest),
      78 (refused model) and 2 (bad arguments): a killed or crashed worker (137 SIGKILL/OOM, 139) is retried, and an image
      that kills it again alone gets a worker_crash record. Unreadable images never fail a child (they get error records).
  EOT
  type = object({
    vcpu     = optional(number, 2)
    memory   = optional(number, 4096)
    timeout  = optional(number, 3600)
    attempts = optional(number, 3)
  })
  default  = {}
  nullable = false

  validation {
    condition = (
      var.job.vcpu == 0.25 ? contains([512, 1024, 2048], var.job.memory) :
      var.job.vcpu == 0.5 ? var.job.memory >= 1024 && var.job.memory <= 4096 && var.job.memory % 1024 == 0 :
      var.job.vcpu == 1 ? var.job.memory >= 2048 && var.job.memory <= 8192 && var.job.memory % 1024 == 0 :
      var.job.vcpu == 2 ? var.job.memory >= 4096 && var.job.memory <= 16384 && var.job.memory % 1024 == 0 :
      var.job.vcpu == 4 ? var.job.memory >= 8192 && var.job.memory <= 30720 && var.job.memory % 1024 == 0 :
      var.job.vcpu == 8 ? var.job.memory >= 16384 && var.job.memory <= 61440 && var.job.memory % 4096 == 0 :
      var.job.vcpu == 16 ? var.job.memory >= 32768 && var.job.memory <= 122880 && var.job.memory % 8192 == 0 :
      false
    )
    error_message = "job.vcpu/job.memory must be a Fargate combination (e.g. 1 vCPU with 2048-8192 MiB in 1024 steps, 2 vCPU with 4096-16384 MiB)."
  }

  validation {
    condition     = var.job.timeout >= 60 && var.job.attempts >= 1 && var.job.attempts <= 10 && floor(var.job.attempts) == var.job.attempts
    error_message = "job.timeout must be >= 60 and job.attempts a whole number between 1 and 10."
  }
}

variable "compute" {
  description = <<-EOT
    Fargate compute environment.
    - max_vcpus: vCPUs of all running tasks together (= concurrent children x job.vcpu).
    - use_spot: FARGATE_SPOT instead of FARGATE (cheaper; interrupted children are retried).
  EOT
  type = object({
    max_vcpus = optional(number, 64)
    use_spot  = optional(bool, false)
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.compute.max_vcpus >= 1 && var.compute.max_vcpus <= 10000 && floor(var.compute.max_vcpus) == var.compute.max_vcpus
    error_message = "compute.max_vcpus must be a whole number between 1 and 10000."
  }

  validation {
    condition     = var.compute.max_vcpus >= var.job.vcpu
    error_message = "compute.max_vcpus must fit at least one child (job.vcpu)."
  }
}

variable "model_sha256" {
  description = "sha256 of the bundle's model.tflite (model_store's `model_sha256`). When set, workers refuse a bundle at `model_uri` whose model.json declares another checksum (exit 78, no retry). Null: the bundle's own model.json is trusted."
  type        = string
  default     = null

  validation {
    condition     = var.model_sha256 == null || can(regex("^[0-9a-fA-F]{64}$", var.model_sha256))
    error_message = "model_sha256 must be 64 hex digits (or null)."
  }
}

variable "telemetry" {
  description = "CloudWatch namespace of the dispatcher's and the worker's EMF metrics and the values of their `service` dimension (POWERTOOLS_SERVICE_NAME). Pass the `telemetry` output to modules/observability so its alarms and dashboard watch these names."
  type = object({
    namespace          = optional(string, "Inferstack")
    dispatcher_service = optional(string, "inferstack-dispatcher")
    worker_service     = optional(string, "inferstack-batch-worker")
  })
  default  = {}
  nullable = false

  validation {
    condition     = length(var.telemetry.namespace) > 0 && !startswith(var.telemetry.namespace, "AWS/") && length(var.telemetry.dispatcher_service) > 0 && length(var.telemetry.worker_service) > 0
    error_message = "telemetry.namespace must be non-empty and must not start with \"AWS/\"; the service names must be non-empty."
  }
}
