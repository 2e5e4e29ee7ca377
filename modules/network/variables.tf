variable "name_prefix" {
  description = "Prefix of every resource name."
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

variable "create_vpc" {
  description = "Create a VPC with private subnets. When false, bring your own: vpc_id and subnet_ids (and route_table_ids for the S3 gateway endpoint) are required."
  type        = bool
  default     = true
  nullable    = false
}

variable "vpc_cidr" {
  description = "IPv4 CIDR block of the created VPC (/16 to /24)."
  type        = string
  default     = "10.42.0.0/16"
  nullable    = false

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(try(split("/", var.vpc_cidr)[1], "0")) >= 16 && tonumber(try(split("/", var.vpc_cidr)[1], "0")) <= 24
    error_message = "vpc_cidr must be an IPv4 CIDR block with a prefix length between /16 and /24 (e.g. 10.42.0.0/16)."
  }
}

variable "az_count" {
  description = "Number of availability zones (one private subnet each) of the created VPC, used when availability_zone_ids is empty."
  type        = number
  default     = 2
  nullable    = false

  validation {
    condition     = var.az_count >= 1 && var.az_count <= 6 && floor(var.az_count) == var.az_count
    error_message = "az_count must be a whole number between 1 and 6."
  }
}

variable "availability_zone_ids" {
  description = <<-EOT
    Zone IDs (e.g. use1-az1, euw1-az2) of the created subnets. Zone names (us-east-1a) map to different
    physical zones in each account; IDs do not. Empty: the az_count lowest-numbered zone IDs of the region
    where every service in interface_endpoints is offered, outside excluded_zone_ids. Each given ID must
    be such a zone too.
  EOT
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = length(var.availability_zone_ids) <= 6 && length(distinct(var.availability_zone_ids)) == length(var.availability_zone_ids)
    error_message = "availability_zone_ids must hold at most 6 distinct zone IDs."
  }

  validation {
    condition     = alltrue([for z in var.availability_zone_ids : can(regex("^[a-z]+[0-9]+-az[0-9]+$", z))])
    error_message = "availability_zone_ids must be zone IDs like use1-az1 (not zone names like us-east-1a)."
  }
}

variable "excluded_zone_ids" {
  description = <<-EOT
    Zone IDs never chosen for the created subnets. Null: the zone IDs this module knows to lack a service
    the stack runs in the VPC (from AWS Fargate's Linux zone list; use1-az3 in us-east-1 for Lambda, see
    the README).
    [] excludes nothing.
  EOT
  type        = list(string)
  default     = null

  validation {
    condition     = var.excluded_zone_ids == null || alltrue([for z in coalesce(var.excluded_zone_ids, []) : can(regex("^[a-z]+[0-9]+-az[0-9]+$", z))])
    error_message = "excluded_zone_ids must be zone IDs like use1-az3."
  }
}

variable "subnet_newbits" {
  description = "Bits added to the VPC prefix length for each private subnet (4 turns a /16 into /20 subnets)."
  type        = number
  default     = 4
  nullable    = false

  validation {
    condition     = var.subnet_newbits >= 1 && var.subnet_newbits <= 12 && floor(var.subnet_newbits) == var.subnet_newbits
    error_message = "subnet_newbits must be a whole number between 1 and 12."
  }
}

variable "vpc_id" {
  description = "Id of an existing VPC, used when create_vpc is false."
  type        = string
  default     = null

  validation {
    condition     = var.create_vpc || var.vpc_id != null
    error_message = "vpc_id is required when create_vpc is false."
  }

  validation {
    condition     = var.vpc_id == null || can(regex("^vpc-[0-9a-f]+$", var.vpc_id))
    error_message = "vpc_id must look like vpc-0123abcd."
  }
}

variable "subnet_ids" {
  description = "Ids of existing private subnets, used when create_vpc is false. The interface endpoints take one per zone (the lowest id) among the zones where their service is offered."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = var.create_vpc || length(var.subnet_ids) > 0
    error_message = "subnet_ids must list at least one subnet when create_vpc is false."
  }

  validation {
    condition     = alltrue([for s in var.subnet_ids : can(regex("^subnet-[0-9a-f]+$", s))])
    error_message = "subnet_ids must look like subnet-0123abcd."
  }
}

variable "route_table_ids" {
  description = "Route tables of the existing subnets that the S3 gateway endpoint is added to, used when create_vpc is false."
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = var.create_vpc || !var.create_vpc_endpoints || length(var.route_table_ids) > 0
    error_message = "route_table_ids is required when create_vpc is false and create_vpc_endpoints is true (the S3 gateway endpoint needs them)."
  }

  validation {
    condition     = alltrue([for r in var.route_table_ids : can(regex("^rtb-[0-9a-f]+$", r))])
    error_message = "route_table_ids must look like rtb-0123abcd."
  }
}

variable "create_vpc_endpoints" {
  description = "Create the S3 gateway endpoint and the interface endpoints listed in interface_endpoints, so private subnets need no NAT."
  type        = bool
  default     = true
  nullable    = false
}

variable "interface_endpoints" {
  description = <<-EOT
    AWS services reached through interface endpoints (suffix of com.amazonaws.<region>.<service>), one
    endpoint network interface per zone each. The default is what Batch jobs on Fargate need: ecr.api and
    ecr.dkr to pull the image, logs for the awslogs driver (image layers come through the S3 gateway).
    A Lambda function needs none of them for its logs, EMF metrics and X-Ray traces; add batch when the
    dispatcher runs in the VPC.
  EOT
  type        = list(string)
  default     = ["ecr.api", "ecr.dkr", "logs"]
  nullable    = false

  validation {
    condition = alltrue([
      for s in var.interface_endpoints : contains(
        ["kms", "logs", "monitoring", "xray", "sts", "ecr.api", "ecr.dkr", "sqs", "lambda", "batch", "ecs", "ssm", "secretsmanager", "execute-api", "sns", "events"],
        s
      )
    ]) && length(distinct(var.interface_endpoints)) == length(var.interface_endpoints)
    error_message = "interface_endpoints must be distinct names among kms, logs, monitoring, xray, sts, ecr.api, ecr.dkr, sqs, lambda, batch, ecs, ssm, secretsmanager, execute-api, sns, events."
  }
}

variable "s3_bucket_arns" {
  description = <<-EOT
    Buckets the workloads use through the S3 gateway endpoint. Its endpoint policy then allows
    s3:GetObject, s3:PutObject and s3:ListBucket on these buckets only, plus s3:GetObject on the region's
    ECR image-layer bucket when ecr.dkr is in interface_endpoints. Empty: the endpoint keeps AWS's default
    policy (any S3 action on any bucket).
  EOT
  type        = list(string)
  default     = []
  nullable    = false

  validation {
    condition     = alltrue([for arn in var.s3_bucket_arns : can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", arn))])
    error_message = "s3_bucket_arns must be S3 bucket ARNs (arn:aws:s3:::<bucket>)."
  }
}

variable "allow_https_egress_to_internet" {
  description = "Also let the Lambda and Batch security groups reach 0.0.0.0/0 on port 443. Only for a brought VPC that has a NAT and lacks some endpoints."
  type        = bool
  default     = false
  nullable    = false
}

variable "enable_flow_logs" {
  description = "Send VPC flow logs to a CloudWatch Logs group created here."
  type        = bool
  default     = true
  nullable    = false
}

variable "flow_logs" {
  description = "Flow log settings: retention of the log group in days, KMS key encrypting it (null: CloudWatch Logs' own encryption), traffic type (ACCEPT, REJECT or ALL)."
  type = object({
    retention_days           = optional(number, 365)
    kms_key_arn              = optional(string)
    traffic_type             = optional(string, "ALL")
    max_aggregation_interval = optional(number, 600)
  })
  default  = {}
  nullable = false

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.flow_logs.retention_days)
    error_message = "flow_logs.retention_days must be a retention CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }

  validation {
    condition     = contains(["ACCEPT", "REJECT", "ALL"], var.flow_logs.traffic_type)
    error_message = "flow_logs.traffic_type must be ACCEPT, REJECT or ALL."
  }

  validation {
    condition     = contains([60, 600], var.flow_logs.max_aggregation_interval)
    error_message = "flow_logs.max_aggregation_interval must be 60 or 600 seconds."
  }

  validation {
    condition     = var.flow_logs.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:", var.flow_logs.kms_key_arn))
    error_message = "flow_logs.kms_key_arn must be a KMS key ARN."
  }
}
