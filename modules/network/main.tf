data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

# The region's Availability Zones (no Local or Wavelength Zones): names and zone IDs, in the same order.
data "aws_availability_zones" "available" {
  #checkov:skip=CKV_AWS_394:Subnets are keyed by zone ID, the az_count lowest eligible numbers, each in its zone number's CIDR slot: a zone AWS adds (a new, higher number) changes no subnet. availability_zone_ids pins the set exactly.
  count = var.create_vpc ? 1 : 0
  state = "available"

  filter {
    name   = "zone-type"
    values = ["availability-zone"]
  }
}

# Where each interface endpoint service is offered: zone names, as this account names them.
data "aws_vpc_endpoint_service" "interface" {
  for_each = var.create_vpc_endpoints ? toset(var.interface_endpoints) : toset([])

  service      = each.key
  service_type = "Interface"
}

# The CIDR of a brought VPC (output only).
data "aws_vpc" "existing" {
  count = var.create_vpc ? 0 : 1
  id    = var.vpc_id
}

# The zones of brought subnets: interface endpoints go to one subnet per zone where the service is offered.
data "aws_subnet" "existing" {
  for_each = var.create_vpc ? toset([]) : toset(var.subnet_ids)
  id       = each.key
}

locals {
  region    = data.aws_region.current.name
  partition = data.aws_partition.current.partition

  # Zone IDs lacking a service the stack runs in the VPC (README, "Zones"): AWS Fargate for Linux
  # (usw1-az2, apne1-az3, from its documented zone list) and, in us-east-1, use1-az3 for Lambda.
  known_unsupported_zone_ids = {
    "us-east-1"      = ["use1-az3"]
    "us-west-1"      = ["usw1-az2"]
    "ap-northeast-1" = ["apne1-az3"]
  }
  excluded_zone_ids = var.excluded_zone_ids != null ? var.excluded_zone_ids : lookup(local.known_unsupported_zone_ids, local.region, [])

  # Zone ID -> name. A name (us-east-1a) is a different physical zone in each account; the ID is not.
  zone_names = var.create_vpc ? zipmap(
    data.aws_availability_zones.available[0].zone_ids,
    data.aws_availability_zones.available[0].names,
  ) : {}
  # The number of a zone ID (use1-az4 -> 4): the subnet's place in the VPC CIDR and the zones' order.
  zone_numbers = {
    for id in distinct(concat(keys(local.zone_names), var.availability_zone_ids)) :
    id => tonumber(regex("-az([0-9]+)$", id)[0])
  }

  # Zones where every interface endpoint service is offered, minus the excluded ones, lowest number first.
  eligible_zone_ids = [
    for key in sort([
      for id, name in local.zone_names : format("%03d/%s", local.zone_numbers[id], id)
      if !contains(local.excluded_zone_ids, id) && alltrue([
        for svc in data.aws_vpc_endpoint_service.interface : contains(svc.availability_zones, name)
      ])
    ]) : split("/", key)[1]
  ]
  zone_ids = var.create_vpc ? (
    length(var.availability_zone_ids) > 0 ? var.availability_zone_ids : slice(local.eligible_zone_ids, 0, min(var.az_count, length(local.eligible_zone_ids)))
  ) : []

  vpc_id          = var.create_vpc ? aws_vpc.this[0].id : var.vpc_id
  vpc_cidr        = var.create_vpc ? aws_vpc.this[0].cidr_block : data.aws_vpc.existing[0].cidr_block
  subnet_ids      = var.create_vpc ? [for id in local.zone_ids : aws_subnet.private[id].id] : var.subnet_ids
  route_table_ids = var.create_vpc ? [aws_route_table.private[0].id] : var.route_table_ids

  # Interface endpoints take at most one subnet per zone: of brought subnets, the lowest id of each zone.
  existing_subnet_by_zone = {
    for zone, ids in { for id, s in data.aws_subnet.existing : s.availability_zone => id... } : zone => sort(ids)[0]
  }
  endpoint_subnet_ids = {
    for svc, ep in data.aws_vpc_endpoint_service.interface : svc => var.create_vpc ? local.subnet_ids : [
      for zone, id in local.existing_subnet_by_zone : id if contains(ep.availability_zones, zone)
    ]
  }

  s3_prefix_list_id = var.create_vpc_endpoints ? aws_vpc_endpoint.s3[0].prefix_list_id : data.aws_prefix_list.s3[0].id

  # The security groups of the workloads, which all get the same egress rules.
  workload_security_groups = {
    lambda = aws_security_group.lambda.id
    batch  = aws_security_group.batch.id
  }
}

################################################################################
# VPC, private subnets, route table (no internet or NAT gateway)
################################################################################

resource "aws_vpc" "this" {
  count = var.create_vpc ? 1 : 0

  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true # interface endpoints with private DNS need both
  tags                 = merge(var.tags, { Name = "${var.name_prefix}-vpc" })
}

# The zone choice, checked at plan time: enough eligible zones, and every given zone ID
# eligible. (Not on aws_vpc: checkov's graph then loses the VPC's flow log.)
resource "terraform_data" "zones" {
  count = var.create_vpc ? 1 : 0

  input = local.zone_ids

  lifecycle {
    precondition {
      condition     = length(var.availability_zone_ids) > 0 || length(local.eligible_zone_ids) >= var.az_count
      error_message = "Only ${length(local.eligible_zone_ids)} zone(s) of ${local.region} (${join(", ", local.eligible_zone_ids)}) offer every service of interface_endpoints (${join(", ", var.interface_endpoints)}) outside excluded_zone_ids (${join(", ", local.excluded_zone_ids)}); az_count is ${var.az_count}."
    }
    precondition {
      condition     = alltrue([for id in var.availability_zone_ids : contains(local.eligible_zone_ids, id)])
      error_message = "availability_zone_ids ${join(", ", setsubtract(var.availability_zone_ids, local.eligible_zone_ids))}: not a zone of ${local.region}, excluded, or a zone where a service of interface_endpoints is not offered. Eligible: ${join(", ", local.eligible_zone_ids)}."
    }
  }
}

# Strip every rule from the default security group so nothing lands in it by accident.
resource "aws_default_security_group" "this" {
  count = var.create_vpc ? 1 : 0

  vpc_id = aws_vpc.this[0].id
  tags   = merge(var.tags, { Name = "${var.name_prefix}-default-deny" })
}

# One subnet per zone ID, keyed and named by it; its CIDR block is the zone number's slot of the VPC
# CIDR, so a zone keeps its block whichever other zones are chosen.
resource "aws_subnet" "private" {
  for_each = toset(local.zone_ids)

  vpc_id                  = aws_vpc.this[0].id
  availability_zone_id    = each.key
  cidr_block              = cidrsubnet(var.vpc_cidr, var.subnet_newbits, local.zone_numbers[each.key] - 1)
  map_public_ip_on_launch = false
  tags = merge(var.tags, {
    Name   = "${var.name_prefix}-private-${each.key}"
    Tier   = "private"
    ZoneId = each.key
  })

  lifecycle {
    precondition {
      condition     = local.zone_numbers[each.key] <= pow(2, var.subnet_newbits)
      error_message = "Zone ${each.key} takes subnet slot ${local.zone_numbers[each.key]} of the VPC CIDR, but subnet_newbits = ${var.subnet_newbits} leaves ${pow(2, var.subnet_newbits)}."
    }
  }
}

resource "aws_route_table" "private" {
  count = var.create_vpc ? 1 : 0

  vpc_id = aws_vpc.this[0].id
  tags   = merge(var.tags, { Name = "${var.name_prefix}-private" })
}

resource "aws_route_table_association" "private" {
  for_each = aws_subnet.private

  subnet_id      = each.value.id
  route_table_id = aws_route_table.private[0].id
}

################################################################################
# Security groups
################################################################################

resource "aws_security_group" "lambda" {
  #checkov:skip=CKV2_AWS_5:Attached to the functions by the realtime_api and batch modules, which take its id as input.
  name        = "${var.name_prefix}-lambda"
  description = "Lambda functions of ${var.name_prefix}: HTTPS to the VPC endpoints and S3 only"
  vpc_id      = local.vpc_id
  tags        = merge(var.tags, { Name = "${var.name_prefix}-lambda" })
}

resource "aws_security_group" "batch" {
  #checkov:skip=CKV2_AWS_5:Attached to the Batch compute environment by the batch module, which takes its id as input.
  name        = "${var.name_prefix}-batch"
  description = "Batch Fargate jobs of ${var.name_prefix}: HTTPS to the VPC endpoints and S3 only"
  vpc_id      = local.vpc_id
  tags        = merge(var.tags, { Name = "${var.name_prefix}-batch" })
}

resource "aws_security_group" "endpoints" {
  count = var.create_vpc_endpoints ? 1 : 0

  name        = "${var.name_prefix}-vpc-endpoints"
  description = "Interface VPC endpoints of ${var.name_prefix}: HTTPS from the Lambda and Batch groups"
  vpc_id      = local.vpc_id
  tags        = merge(var.tags, { Name = "${var.name_prefix}-vpc-endpoints" })
}

# Only the workloads' security groups may open connections to the endpoints, not the whole VPC.
resource "aws_vpc_security_group_ingress_rule" "endpoints_https" {
  for_each = var.create_vpc_endpoints ? local.workload_security_groups : {}

  security_group_id            = aws_security_group.endpoints[0].id
  description                  = "HTTPS from the ${each.key} security group"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = each.value
  tags                         = var.tags

  # The moto emulator drops the description of rules that reference a group or prefix list,
  # which would show as a change on every plan; the description is set at creation.
  lifecycle {
    ignore_changes = [description]
  }
}

resource "aws_vpc_security_group_egress_rule" "to_endpoints" {
  for_each = var.create_vpc_endpoints ? local.workload_security_groups : {}

  security_group_id            = each.value
  description                  = "HTTPS to the interface VPC endpoints"
  ip_protocol                  = "tcp"
  from_port                    = 443
  to_port                      = 443
  referenced_security_group_id = aws_security_group.endpoints[0].id
  tags                         = var.tags

  # The moto emulator drops the description of rules that reference a group or prefix list,
  # which would show as a change on every plan; the description is set at creation.
  lifecycle {
    ignore_changes = [description]
  }
}

resource "aws_vpc_security_group_egress_rule" "to_s3" {
  for_each = local.workload_security_groups

  security_group_id = each.value
  description       = "HTTPS to S3 (regional prefix list)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = local.s3_prefix_list_id
  tags              = var.tags

  # The moto emulator drops the description of rules that reference a group or prefix list,
  # which would show as a change on every plan; the description is set at creation.
  lifecycle {
    ignore_changes = [description]
  }
}

resource "aws_vpc_security_group_egress_rule" "to_internet" {
  for_each = var.allow_https_egress_to_internet ? local.workload_security_groups : {}

  security_group_id = each.value
  description       = "HTTPS to the internet through the VPC's own NAT"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
  tags              = var.tags
}

################################################################################
# VPC endpoints
################################################################################

data "aws_prefix_list" "s3" {
  count = var.create_vpc_endpoints ? 0 : 1
  name  = "com.amazonaws.${local.region}.s3"
}

resource "aws_vpc_endpoint" "s3" {
  count = var.create_vpc_endpoints ? 1 : 0

  vpc_id            = local.vpc_id
  service_name      = "com.amazonaws.${local.region}.s3"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = local.route_table_ids
  tags              = merge(var.tags, { Name = "${var.name_prefix}-s3" })
}

# The gateway endpoint reaches only the stack's buckets (and ECR's image layers) once s3_bucket_arns
# is given. A separate resource, so the endpoint (and the subnets' routes) need not wait for buckets
# created by modules that take this module's subnets.
data "aws_iam_policy_document" "s3_endpoint" {
  count = var.create_vpc_endpoints && length(var.s3_bucket_arns) > 0 ? 1 : 0

  statement {
    sid       = "StackBuckets"
    effect    = "Allow"
    actions   = ["s3:GetObject", "s3:PutObject", "s3:ListBucket"]
    resources = concat(var.s3_bucket_arns, [for arn in var.s3_bucket_arns : "${arn}/*"])
    principals {
      type        = "*"
      identifiers = ["*"]
    }
  }

  # Image layers pulled from ECR are served from this AWS-owned bucket through the gateway endpoint.
  dynamic "statement" {
    for_each = contains(var.interface_endpoints, "ecr.dkr") ? [1] : []
    content {
      sid       = "EcrImageLayers"
      effect    = "Allow"
      actions   = ["s3:GetObject"]
      resources = ["arn:${local.partition}:s3:::prod-${local.region}-starport-layer-bucket/*"]
      principals {
        type        = "*"
        identifiers = ["*"]
      }
    }
  }
}

resource "aws_vpc_endpoint_policy" "s3" {
  count = length(data.aws_iam_policy_document.s3_endpoint)

  vpc_endpoint_id = aws_vpc_endpoint.s3[0].id
  policy          = data.aws_iam_policy_document.s3_endpoint[0].json
}

resource "aws_vpc_endpoint" "interface" {
  for_each = var.create_vpc_endpoints ? toset(var.interface_endpoints) : toset([])

  vpc_id              = local.vpc_id
  service_name        = "com.amazonaws.${local.region}.${each.key}"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = local.endpoint_subnet_ids[each.key]
  security_group_ids  = [aws_security_group.endpoints[0].id]
  private_dns_enabled = true
  tags                = merge(var.tags, { Name = "${var.name_prefix}-${each.key}" })

  lifecycle {
    precondition {
      condition     = length(local.endpoint_subnet_ids[each.key]) > 0
      error_message = "None of subnet_ids is in a zone where com.amazonaws.${local.region}.${each.key} is offered (${join(", ", sort(data.aws_vpc_endpoint_service.interface[each.key].availability_zones))})."
    }
  }
}

# A brought subnet in a zone this module would not choose (excluded_zone_ids) may fail at run time:
# Lambda refuses subnets in zones it does not support, Fargate places no task there.
check "brought_subnets_zones" {
  assert {
    condition     = alltrue([for id, s in data.aws_subnet.existing : !contains(local.excluded_zone_ids, s.availability_zone_id)])
    error_message = "Subnets in excluded zones (${join(", ", local.excluded_zone_ids)}): ${join(", ", sort([for id, s in data.aws_subnet.existing : id if contains(local.excluded_zone_ids, s.availability_zone_id)]))}. Lambda or Fargate may not run there."
  }
}

################################################################################
# Flow logs
################################################################################

resource "aws_cloudwatch_log_group" "flow_logs" {
  #checkov:skip=CKV_AWS_158:Encrypted with flow_logs.kms_key_arn when given (the root stack passes its key); otherwise CloudWatch Logs' own encryption applies.
  count = var.enable_flow_logs ? 1 : 0

  name              = "/aws/vpc/${var.name_prefix}-flow-logs"
  retention_in_days = var.flow_logs.retention_days
  kms_key_id        = var.flow_logs.kms_key_arn
  tags              = var.tags
}

data "aws_iam_policy_document" "flow_logs_assume" {
  count = var.enable_flow_logs ? 1 : 0

  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["vpc-flow-logs.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

data "aws_iam_policy_document" "flow_logs" {
  count = var.enable_flow_logs ? 1 : 0

  statement {
    sid       = "WriteFlowLogsToTheirGroup"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["${aws_cloudwatch_log_group.flow_logs[0].arn}:*"]
  }
}

resource "aws_iam_role" "flow_logs" {
  count = var.enable_flow_logs ? 1 : 0

  name               = "${var.name_prefix}-vpc-flow-logs"
  assume_role_policy = data.aws_iam_policy_document.flow_logs_assume[0].json
  tags               = var.tags
}

resource "aws_iam_role_policy" "flow_logs" {
  count = var.enable_flow_logs ? 1 : 0

  name   = "write-flow-logs"
  role   = aws_iam_role.flow_logs[0].id
  policy = data.aws_iam_policy_document.flow_logs[0].json
}

resource "aws_flow_log" "this" {
  count = var.enable_flow_logs ? 1 : 0

  vpc_id                   = local.vpc_id
  traffic_type             = var.flow_logs.traffic_type
  log_destination_type     = "cloud-watch-logs"
  log_destination          = aws_cloudwatch_log_group.flow_logs[0].arn
  iam_role_arn             = aws_iam_role.flow_logs[0].arn
  max_aggregation_interval = var.flow_logs.max_aggregation_interval
  tags                     = merge(var.tags, { Name = "${var.name_prefix}-flow-logs" })
}
