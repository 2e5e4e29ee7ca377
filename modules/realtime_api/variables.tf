###############################################################################
# Naming and tags
###############################################################################

variable "name_prefix" {
  description = "Prefix of every resource name (function `<prefix>-predict`, API `<prefix>-api`, web ACL `<prefix>-api`). Lower-case letters, digits and hyphens, starting with a letter, at most 32 characters so that derived names stay within AWS limits."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,30}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 2-32 characters of a-z, 0-9 and '-', start with a letter and not end with '-'."
  }
}

variable "tags" {
  description = "Tags added to every taggable resource of the module."
  type        = map(string)
  default     = {}
  nullable    = false
}

###############################################################################
# Lambda function
###############################################################################

variable "function_zip_path" {
  description = "Path of the real-time function zip (handler `inferstack_predict.handler.lambda_handler`). Deployed with `filename` + `source_code_hash`, so a rebuilt zip with other content redeploys."
  type        = string
  nullable    = false

  validation {
    condition     = endswith(var.function_zip_path, ".zip")
    error_message = "function_zip_path must name a .zip file."
  }
}

variable "layer_zip_path" {
  description = "Path of the runtime dependency layer zip for `architecture` (e.g. build/dist/layer-arm64.zip). The module publishes it as a layer version. Set exactly one of `layer_zip_path` and `layer_arn`."
  type        = string
  default     = null

  validation {
    condition     = var.layer_zip_path == null || endswith(coalesce(var.layer_zip_path, "x.zip"), ".zip")
    error_message = "layer_zip_path must name a .zip file."
  }

  validation {
    condition     = (var.layer_zip_path == null) != (var.layer_arn == null)
    error_message = "Set exactly one of layer_zip_path (the module publishes the layer) and layer_arn (bring your own layer version)."
  }
}

variable "require_layer_manifest" {
  description = "Refuse a `layer_zip_path` without its build manifest (`<zip name>.json` beside it, written by layers/build.py) instead of publishing it unchecked. The root stack sets it when it deploys the project's own build (build/dist), so that a layer left from an older build, for another Python, cannot deploy."
  type        = bool
  default     = false
  nullable    = false
}

variable "layer_arn" {
  description = "ARN of an existing layer version (with version suffix) holding the runtime dependencies, built for `architecture` and `runtime`. Set exactly one of `layer_zip_path` and `layer_arn`."
  type        = string
  default     = null

  validation {
    condition     = var.layer_arn == null || can(regex("^arn:aws[a-z-]*:lambda:[a-z0-9-]+:[0-9]{12}:layer:[A-Za-z0-9_-]+:[0-9]+$", coalesce(var.layer_arn, "-")))
    error_message = "layer_arn must be a layer version ARN: arn:aws:lambda:<region>:<account>:layer:<name>:<version>."
  }
}

variable "architecture" {
  description = "Instruction set of the function and of the layer: \"arm64\" (Graviton, about 20% cheaper per GB-second) or \"x86_64\". The layer must be built for the same architecture."
  type        = string
  default     = "arm64"
  nullable    = false

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture must be \"arm64\" or \"x86_64\"."
  }
}

variable "runtime" {
  description = "Lambda runtime (Amazon Linux 2023). python3.12 or newer: the ai-edge-litert wheels need a newer glibc than the python3.11 runtime (Amazon Linux 2) has. The layer must be built for the same Python: layers/build.py builds python3.13 layers, and a `layer_zip_path` whose manifest (`<zip name>.json` beside it) names another runtime or architecture is refused at plan time."
  type        = string
  default     = "python3.13"
  nullable    = false

  validation {
    condition     = contains(["python3.12", "python3.13"], var.runtime)
    error_message = "runtime must be \"python3.12\" or \"python3.13\"."
  }
}

variable "memory_size" {
  description = <<-EOT
    Memory of the function in MB; Lambda allocates CPU in proportion (one vCPU's worth at 1769 MB).
    The default, 3008, is the largest size a new AWS account may set (new accounts have a reduced memory quota;
    AWS raises it with use) and gives about 1.7 vCPUs: the function sees 2 CPUs and runs a 2-thread interpreter.
    ResNet-50 int8 takes about 91 ms per image on one full vCPU, so an estimated 54 ms here (91 / 1.7, not measured
    on Lambda), at about the same price per request (GB-seconds) as 1769 MB. Larger sizes (3538 = 2 full vCPUs, 46 ms) are an opt-in for accounts whose
    Lambda memory quota allows them; 1769 is the cheapest size with a whole vCPU.
  EOT
  type        = number
  default     = 3008
  nullable    = false

  validation {
    condition     = var.memory_size >= 512 && var.memory_size <= 10240 && floor(var.memory_size) == var.memory_size
    error_message = "memory_size must be a whole number of MB between 512 (the model and Pillow need that much) and 10240."
  }
}

variable "timeout" {
  description = "Function timeout in seconds. API Gateway (REST) stops waiting after 29 s, so a longer timeout only lets a cold start finish and warm the environment for the next request."
  type        = number
  default     = 29
  nullable    = false

  validation {
    condition     = var.timeout >= 3 && var.timeout <= 900 && floor(var.timeout) == var.timeout
    error_message = "timeout must be a whole number of seconds between 3 and 900."
  }
}

variable "reserved_concurrency" {
  description = <<-EOT
    Reserved concurrent executions of the function. -1 (the default) reserves nothing: the function shares the account's
    unreserved pool, and API Gateway throttling (api.*) bounds the load. A reservation is an opt-in for accounts with
    room for it: Lambda refuses one that takes the account's unreserved concurrency under its minimum (100; a new
    account's reduced quota can be that minimum itself, leaving nothing to reserve). 0 throttles every invocation.
  EOT
  type        = number
  default     = -1
  nullable    = false

  validation {
    condition     = var.reserved_concurrency >= -1 && floor(var.reserved_concurrency) == var.reserved_concurrency
    error_message = "reserved_concurrency must be -1 (unreserved) or a whole number >= 0."
  }
}

variable "provisioned_concurrency" {
  description = "Provisioned concurrent executions on the `live` alias (pre-initialised environments with the model loaded, no cold start). 0 (the default) turns it off: it is billed while idle, and it comes out of the account's unreserved concurrency, which Lambda keeps at its minimum (100; a new account's reduced quota may have nothing above it). Emulators have no API for it."
  type        = number
  default     = 0
  nullable    = false

  validation {
    condition     = var.provisioned_concurrency >= 0 && floor(var.provisioned_concurrency) == var.provisioned_concurrency
    error_message = "provisioned_concurrency must be a whole number >= 0 (0 = off)."
  }

  validation {
    condition     = var.reserved_concurrency == -1 || var.provisioned_concurrency <= var.reserved_concurrency
    error_message = "provisioned_concurrency cannot exceed reserved_concurrency."
  }
}

variable "subnet_ids" {
  description = "Private subnets for the function. Empty = the function runs outside any VPC. In a VPC the function needs a route to S3, KMS, CloudWatch Logs and X-Ray (VPC endpoints or NAT)."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "subnet_ids must be subnet IDs (subnet-...)."
  }
}

variable "security_group_ids" {
  description = "Security groups of the function's network interfaces. Required when `subnet_ids` is set, empty otherwise."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for s in var.security_group_ids : can(regex("^sg-[0-9a-f]+$", s))])
    error_message = "security_group_ids must be security group IDs (sg-...)."
  }

  validation {
    condition     = (length(var.subnet_ids) == 0) == (length(var.security_group_ids) == 0)
    error_message = "Set subnet_ids and security_group_ids together (VPC) or leave both empty (no VPC)."
  }
}

variable "enable_xray_tracing" {
  description = "Active X-Ray tracing on the function and on the API stage."
  type        = bool
  default     = true
  nullable    = false
}

variable "log_retention_days" {
  description = "Retention of the function, API access and WAF log groups, in days (0 = never expire)."
  type        = number
  default     = 365
  nullable    = false

  validation {
    condition     = contains([0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

###############################################################################
# Model and inference settings (function environment)
###############################################################################

variable "model_uri" {
  description = "S3 URI of the model bundle prefix, `s3://<bucket>/<prefix>/` (model.tflite, labels.txt, model.json). The function may read only this prefix."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/([^/]+/)*$", var.model_uri))
    error_message = "model_uri must look like s3://<bucket>/<prefix>/ (ending with '/')."
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

variable "kms_key_arn" {
  description = "KMS key that encrypts the model bucket, the log groups and the function's environment. Its key policy must let CloudWatch Logs (logs.<region>.amazonaws.com) use it."
  type        = string
  nullable    = false

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN (arn:aws:kms:<region>:<account>:key/<id>)."
  }
}

variable "max_image_bytes" {
  description = "MAX_IMAGE_BYTES: largest accepted image, in bytes; larger ones get 413. At most 4.5 MiB: a synchronous Lambda event is limited to 6 MB and API Gateway delivers binary bodies base64-encoded (4/3 larger)."
  type        = number
  default     = 4194304
  nullable    = false

  validation {
    condition     = var.max_image_bytes >= 1024 && var.max_image_bytes <= 4718592
    error_message = "max_image_bytes must be between 1024 and 4718592 (4.5 MiB, the 6 MB Lambda payload limit after base64)."
  }
}

variable "max_image_pixels" {
  description = "MAX_IMAGE_PIXELS: largest accepted image in pixels (width x height), the decompression-bomb guard; larger ones get 413."
  type        = number
  default     = 40000000
  nullable    = false

  validation {
    condition     = var.max_image_pixels >= 50176 && var.max_image_pixels <= 178956970
    error_message = "max_image_pixels must be between 50176 (224x224) and 178956970 (Pillow's own hard limit)."
  }
}

variable "default_top_k" {
  description = "DEFAULT_TOP_K: number of classes returned when the request has no top_k parameter."
  type        = number
  default     = 5
  nullable    = false

  validation {
    condition     = var.default_top_k >= 1 && var.default_top_k <= 20 && floor(var.default_top_k) == var.default_top_k
    error_message = "default_top_k must be a whole number between 1 and 20."
  }
}

variable "log_level" {
  description = "LOG_LEVEL of the function's structured logger."
  type        = string
  default     = "INFO"
  nullable    = false

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be one of DEBUG, INFO, WARNING, ERROR."
  }
}

###############################################################################
# API Gateway
###############################################################################

variable "api" {
  description = <<-EOT
    REST API settings.
    - stage_name: the single stage (URL path segment).
    - authorization: of POST /predict. "NONE" (the default; callers are identified by their API key only) or "AWS_IAM":
      every request must be signed with AWS Signature Version 4 (service "execute-api") by an identity whose IAM policy
      allows execute-api:Invoke on the `execute_api_arn` output. An API key identifies a caller; SigV4 authenticates one.
    - api_key_required: callers must send an API key (x-api-key) of the usage plan; also with AWS_IAM (keys then meter
      and throttle authenticated callers). false with "NONE" is refused: the API would be open to anyone.
    - throttling_rate_limit / throttling_burst_limit: stage-wide steady requests per second and burst, all clients together.
    - key_rate_limit / key_burst_limit: per API key (usage plan); null = the stage values.
    - quota_limit / quota_period: requests per API key per DAY, WEEK or MONTH; 0 = no quota.
    - binary_media_types: Content-Types API Gateway passes to the function base64-encoded (isBase64Encoded = true).
      The same list reaches the function (BINARY_MEDIA_TYPES), which accepts exactly these types plus application/json:
      a type outside the list would arrive as text, its bytes mangled. Exact types only (no wildcards), never JSON.
      [] = JSON bodies only. moto 5.2.5 as shipped drops binaryMediaTypes on CreateRestApi (and appends "" on
      updates), so there only [] plans clean; the project's emulator launcher (inferstack.local.motoserver) keeps them.
    - metrics_enabled: per-method CloudWatch metrics.
    - logging_level: execution logging (OFF, ERROR, INFO) into `API-Gateway-Execution-Logs_<api id>/<stage>`, which the
      module creates with retention and KMS. Like the access logs (JSON, own log group, always on) it needs the region's
      API Gateway CloudWatch role: see create_api_gateway_account.
  EOT
  type = object({
    stage_name             = optional(string, "v1")
    authorization          = optional(string, "NONE")
    api_key_required       = optional(bool, true)
    throttling_rate_limit  = optional(number, 50)
    throttling_burst_limit = optional(number, 100)
    key_rate_limit         = optional(number)
    key_burst_limit        = optional(number)
    quota_limit            = optional(number, 100000)
    quota_period           = optional(string, "MONTH")
    binary_media_types     = optional(list(string), ["image/jpeg", "image/jpg", "image/pjpeg", "image/png", "image/webp", "image/bmp", "image/x-bmp", "image/x-ms-bmp", "image/gif", "application/octet-stream"])
    metrics_enabled        = optional(bool, true)
    logging_level          = optional(string, "ERROR")
  })
  default  = {}
  nullable = false

  validation {
    condition     = can(regex("^[A-Za-z0-9_]{1,128}$", var.api.stage_name))
    error_message = "api.stage_name must be 1-128 characters of letters, digits and '_'."
  }

  validation {
    condition     = contains(["NONE", "AWS_IAM"], var.api.authorization)
    error_message = "api.authorization must be \"NONE\" (API key only) or \"AWS_IAM\" (SigV4-signed requests)."
  }

  validation {
    condition     = var.api.authorization == "AWS_IAM" || var.api.api_key_required
    error_message = "api.api_key_required = false needs api.authorization = \"AWS_IAM\": otherwise anyone could call the API."
  }

  validation {
    condition     = var.api.throttling_rate_limit > 0 && var.api.throttling_burst_limit >= 1 && floor(var.api.throttling_burst_limit) == var.api.throttling_burst_limit
    error_message = "api.throttling_rate_limit must be > 0 and api.throttling_burst_limit a whole number >= 1."
  }

  validation {
    condition     = (var.api.key_rate_limit == null || try(var.api.key_rate_limit > 0, false)) && (var.api.key_burst_limit == null || try(var.api.key_burst_limit >= 1, false))
    error_message = "api.key_rate_limit must be > 0 and api.key_burst_limit >= 1 when set."
  }

  validation {
    condition     = var.api.quota_limit >= 0 && floor(var.api.quota_limit) == var.api.quota_limit && contains(["DAY", "WEEK", "MONTH"], var.api.quota_period)
    error_message = "api.quota_limit must be a whole number >= 0 (0 = no quota) and api.quota_period one of DAY, WEEK, MONTH."
  }

  validation {
    condition     = alltrue([for t in var.api.binary_media_types : can(regex("^[a-z]+/[a-z0-9][a-z0-9.+-]*$", t)) && t != "application/json" && !endswith(t, "+json")])
    error_message = "api.binary_media_types must be exact lower-case media types (type/subtype, no wildcards) and no JSON type: JSON requests must reach the function as text."
  }

  validation {
    condition     = length(var.api.binary_media_types) == length(distinct(var.api.binary_media_types)) && length(join("|", var.api.binary_media_types)) <= 480
    error_message = "api.binary_media_types must not repeat a type, and must fit in 480 characters joined (the web ACL matches them in one regex of at most 512)."
  }

  validation {
    condition     = contains(["OFF", "ERROR", "INFO"], var.api.logging_level)
    error_message = "api.logging_level must be OFF, ERROR or INFO."
  }
}

variable "create_api_gateway_account" {
  description = <<-EOT
    Create the IAM role API Gateway writes CloudWatch Logs with (AWS managed policy AmazonAPIGatewayPushToCloudWatchLogs)
    and set it as the API Gateway account's CloudWatch role (aws_api_gateway_account). This is an account-wide,
    per-region setting, not part of this API: there is one per account and region, and every REST API there uses it.
    A stage with access or execution logging cannot be created until it is set ("CloudWatch Logs role ARN must be set
    in account settings"). Off by default in the module: turn it on in the one stack that owns the region's setting;
    leave it off where the account already has the role (a landing zone, another stack), since this would replace it.
    Destroying the module resets the setting (reset_on_delete).
  EOT
  type        = bool
  default     = false
  nullable    = false
}

###############################################################################
# WAF
###############################################################################

variable "enable_waf" {
  description = "Create a WAFv2 web ACL (REGIONAL) and associate it with the API stage."
  type        = bool
  default     = true
  nullable    = false
}

variable "waf" {
  description = <<-EOT
    Web ACL settings (used when enable_waf = true).
    - rate_limit: requests per client IP per rate_limit_window_seconds before that IP is blocked (rate-based rule).
    - rate_limit_window_seconds: 60, 120, 300 or 600.
    - max_body_bytes: requests declaring a larger Content-Length are blocked (body-size rule, see the README:
      WAF itself only sees the first body_inspection_limit of a body). The default, 6 MiB, is the synchronous
      Lambda payload limit: nothing larger can succeed, so it is refused at the edge.
    - body_inspection_limit: how much of the body the managed rules and the size rule see: KB_16 (free), KB_32, KB_48, KB_64.
    - common_rule_set_count_overrides: more rules of AWSManagedRulesCommonRuleSet switched from block to count (e.g.
      NoUserAgent_HEADER). Its body rules are handled by the module: SizeRestrictions_BODY (every body over 8 KB, i.e.
      every image) is always counted; CrossSiteScripting_BODY, GenericLFI_BODY, GenericRFI_BODY and EC2MetaDataSSRF_BODY
      are counted in the group and enforced by the next rule on every body that is not one of api.binary_media_types
      (raw image bytes, EXIF included, can look like those patterns; a JSON body is text and stays inspected).
    - enable_anonymous_ip_list: AWSManagedRulesAnonymousIpList (Tor, anonymising proxies and VPNs blocked; its
      HostingProviderIPList rule only counts, because legitimate server-side callers run in cloud hosting).
    - enable_logging: send WAF logs to a CloudWatch log group `aws-waf-logs-<name_prefix>-api` (x-api-key redacted).
  EOT
  type = object({
    rate_limit                      = optional(number, 1000)
    rate_limit_window_seconds       = optional(number, 300)
    max_body_bytes                  = optional(number, 6291456)
    body_inspection_limit           = optional(string, "KB_16")
    common_rule_set_count_overrides = optional(list(string), [])
    enable_anonymous_ip_list        = optional(bool, true)
    enable_logging                  = optional(bool, true)
  })
  default  = {}
  nullable = false

  validation {
    condition     = var.waf.rate_limit >= 10 && var.waf.rate_limit <= 2000000000 && floor(var.waf.rate_limit) == var.waf.rate_limit
    error_message = "waf.rate_limit must be a whole number between 10 and 2000000000."
  }

  validation {
    condition     = contains([60, 120, 300, 600], var.waf.rate_limit_window_seconds)
    error_message = "waf.rate_limit_window_seconds must be 60, 120, 300 or 600."
  }

  validation {
    condition     = var.waf.max_body_bytes >= 1 && var.waf.max_body_bytes <= 10485760 && floor(var.waf.max_body_bytes) == var.waf.max_body_bytes
    error_message = "waf.max_body_bytes must be a whole number between 1 and 10485760 (API Gateway's own payload limit)."
  }

  validation {
    condition     = contains(["KB_16", "KB_32", "KB_48", "KB_64"], var.waf.body_inspection_limit)
    error_message = "waf.body_inspection_limit must be KB_16, KB_32, KB_48 or KB_64."
  }

  validation {
    condition     = alltrue([for r in var.waf.common_rule_set_count_overrides : can(regex("^[A-Za-z0-9_]+$", r))])
    error_message = "waf.common_rule_set_count_overrides must be rule names of AWSManagedRulesCommonRuleSet, e.g. NoUserAgent_HEADER."
  }
}

variable "model_sha256" {
  description = "sha256 of the bundle's model.tflite (model_store's `model_sha256`). When set, the function refuses a bundle at `model_uri` whose model.json declares another checksum, so a model swapped in the bucket is never served. Null: the bundle's own model.json is trusted."
  type        = string
  default     = null

  validation {
    condition     = var.model_sha256 == null || can(regex("^[0-9a-fA-F]{64}$", var.model_sha256))
    error_message = "model_sha256 must be 64 hex digits (or null)."
  }
}

variable "telemetry" {
  description = "CloudWatch namespace of the function's EMF metrics and the value of their `service` dimension (POWERTOOLS_SERVICE_NAME). Pass the `telemetry` output to modules/observability so its alarms and dashboard watch these names."
  type = object({
    namespace = optional(string, "Inferstack")
    service   = optional(string, "inferstack-predict")
  })
  default  = {}
  nullable = false

  validation {
    condition     = length(var.telemetry.namespace) > 0 && !startswith(var.telemetry.namespace, "AWS/") && length(var.telemetry.service) > 0
    error_message = "telemetry.namespace must be non-empty and must not start with \"AWS/\"; telemetry.service must be non-empty."
  }
}

variable "canary" {
  description = <<-EOT
    Canary rollout of a candidate model on the `live` alias. Null (the default): the alias serves the one version
    published from the function's configuration, with model_uri. Set: the function's configuration carries the
    candidate's model (model_uri, in the model bucket, and model_sha256, its pin), the version published from it is the
    candidate, and the alias keeps serving the version it already serves (the primary, which must serve model_uri and
    model_sha256: the plan fails otherwise) while sending `weight` of its invocations to the candidate. weight 0 routes
    nothing to the candidate (a rollback that keeps it published and watched); it must be below 1. Needs an existing
    deployment of the primary (the alias is read back). See the README's rollout section.
  EOT
  type = object({
    model_uri    = string
    model_sha256 = optional(string)
    weight       = number
  })
  default = null

  validation {
    condition     = var.canary == null || try(var.canary.weight >= 0 && var.canary.weight < 1, false)
    error_message = "canary.weight is the share of requests sent to the candidate: at least 0 (none: a rollback) and below 1 (promote instead: make the candidate the primary)."
  }

  validation {
    condition     = var.canary == null || can(regex("^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/([^/]+/)*$", try(var.canary.model_uri, "")))
    error_message = "canary.model_uri must look like s3://<bucket>/<prefix>/ (ending with '/')."
  }

  validation {
    condition     = var.canary == null || try(split("/", trimprefix(var.canary.model_uri, "s3://"))[0] == split("/", trimprefix(var.model_uri, "s3://"))[0], false)
    error_message = "canary.model_uri must be in the bucket of model_uri (model_bucket_arn): the function's role reads that bucket only."
  }

  validation {
    condition     = var.canary == null || try(var.canary.model_uri != var.model_uri, false)
    error_message = "canary.model_uri is model_uri: the candidate must be another model."
  }

  validation {
    condition     = var.canary == null || try(var.canary.model_sha256 == null || can(regex("^[0-9a-fA-F]{64}$", var.canary.model_sha256)), false)
    error_message = "canary.model_sha256 must be 64 hex digits (or null)."
  }
}
