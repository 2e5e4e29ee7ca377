data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

data "aws_availability_zones" "available" {
  count = var.create_vpc && length(var.availability_zones) == 0 ? 1 : 0
  state = "available"
}

# The CIDR of a brought VPC is needed for the endpoints' ingress rule.
data "aws_vpc" "existing" {
  count = var.create_vpc ? 0 : 1
  id    = var.vpc_id
}

locals {
  region = data.aws_region.current.name

  azs = var.create_vpc ? (
    length(var.availability_zones) > 0 ? var.availability_zones : slice(data.aws_availability_zones.available[0].names, 0, var.az_count)
  ) : []

  vpc_id          = var.create_vpc ? aws_vpc.this[0].id : var.vpc_id
  vpc_cidr        = var.create_vpc ? aws_vpc.this[0].cidr_block : data.aws_vpc.existing[0].cidr_block
  subnet_ids      = var.create_vpc ? aws_subnet.private[*].id : var.subnet_ids
  route_table_ids = var.create_vpc ? [aws_route_table.private[0].id] : var.route_table_ids

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

# Strip every rule from the default security group so nothing lands in it by accident.
resource "aws_default_security_group" "this" {
  count = var.create_vpc ? 1 : 0

  vpc_id = aws_vpc.this[0].id
  tags   = merge(var.tags, { Name = "${var.name_prefix}-default-deny" })
}

resource "aws_subnet" "private" {
  count = length(local.azs)

  vpc_id                  = aws_vpc.this[0].id
  availability_zone       = local.azs[count.index]
  cidr_block              = cidrsubnet(var.vpc_cidr, var.subnet_newbits, count.index)
  map_public_ip_on_launch = false
  tags                    = merge(var.tags, { Name = "${var.name_prefix}-private-${local.azs[count.index]}", Tier = "private" })
}

resource "aws_route_table" "private" {
  count = var.create_vpc ? 1 : 0

  vpc_id = aws_vpc.this[0].id
  tags   = merge(var.tags, { Name = "${var.name_prefix}-private" })
}

resource "aws_route_table_association" "private" {
  count = length(aws_subnet.private)

  subnet_id      = aws_subnet.private[count.index].id
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
  description = "Interface VPC endpoints of ${var.name_prefix}: HTTPS from inside the VPC"
  vpc_id      = local.vpc_id
  tags        = merge(var.tags, { Name = "${var.name_prefix}-vpc-endpoints" })
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_https" {
  count = var.create_vpc_endpoints ? 1 : 0

  security_group_id = aws_security_group.endpoints[0].id
  description       = "HTTPS from the VPC"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = local.vpc_cidr
  tags              = var.tags
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

resource "aws_vpc_endpoint" "interface" {
  for_each = var.create_vpc_endpoints ? toset(var.interface_endpoints) : toset([])

  vpc_id              = local.vpc_id
  service_name        = "com.amazonaws.${local.region}.${each.key}"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = local.subnet_ids
  security_group_ids  = [aws_security_group.endpoints[0].id]
  private_dns_enabled = true
  tags                = merge(var.tags, { Name = "${var.name_prefix}-${each.key}" })
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
