# Module logic only: the AWS provider is mocked, nothing is created anywhere.
#
# The zones are those of us-east-1 as one account might see them: the names map to zone IDs out of
# order (as they do in real accounts and in moto), and use1-az3 is among them.

mock_provider "aws" {
  mock_data "aws_region" {
    defaults = { name = "us-east-1" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012", arn = "arn:aws:iam::123456789012:user/test", user_id = "AIDTEST" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws", dns_suffix = "amazonaws.com" }
  }
  mock_data "aws_availability_zones" {
    defaults = {
      names    = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1e", "us-east-1f"]
      zone_ids = ["use1-az6", "use1-az1", "use1-az2", "use1-az4", "use1-az3", "use1-az5"]
    }
  }
  mock_data "aws_vpc_endpoint_service" {
    defaults = { availability_zones = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d", "us-east-1e", "us-east-1f"] }
  }
  mock_data "aws_vpc" {
    defaults = { cidr_block = "172.16.0.0/16" }
  }
  mock_data "aws_subnet" {
    defaults = { availability_zone = "us-east-1b", availability_zone_id = "use1-az1" }
  }
  mock_data "aws_prefix_list" {
    defaults = { id = "pl-0000aaaa" }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_resource "aws_vpc" {
    defaults = { id = "vpc-0123abcd" }
  }
  mock_resource "aws_vpc_endpoint" {
    defaults = { prefix_list_id = "pl-1111bbbb" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:us-east-1:123456789012:log-group:/aws/vpc/test-net-flow-logs" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::123456789012:role/test-net-vpc-flow-logs" }
  }
}

variables {
  name_prefix = "test-net"
  tags        = { Project = "inferstack-test" }
}

run "defaults" {
  command = apply

  assert {
    condition     = aws_vpc.this[0].cidr_block == "10.42.0.0/16" && aws_vpc.this[0].enable_dns_hostnames && aws_vpc.this[0].enable_dns_support
    error_message = "the VPC must use the default CIDR with DNS support and hostnames (private DNS of endpoints)"
  }
  assert {
    condition     = tolist(output.availability_zone_ids) == tolist(["use1-az1", "use1-az2"]) && tolist(output.availability_zones) == tolist(["us-east-1b", "us-east-1c"])
    error_message = "two subnets in the lowest-numbered zone IDs (not the first zone names, which map to other zones in each account)"
  }
  assert {
    condition     = keys(aws_subnet.private) == ["use1-az1", "use1-az2"] && alltrue([for id, s in aws_subnet.private : s.availability_zone_id == id])
    error_message = "subnets must be keyed by zone ID and placed by zone ID"
  }
  assert {
    condition     = aws_subnet.private["use1-az1"].tags["Name"] == "test-net-private-use1-az1" && aws_subnet.private["use1-az2"].tags["ZoneId"] == "use1-az2"
    error_message = "subnets must be named and tagged by zone ID"
  }
  assert {
    condition     = aws_subnet.private["use1-az1"].cidr_block == "10.42.0.0/20" && aws_subnet.private["use1-az2"].cidr_block == "10.42.16.0/20"
    error_message = "a subnet's CIDR block is its zone number's slot of the VPC CIDR (subnet_newbits)"
  }
  assert {
    condition     = tolist(output.subnet_ids) == tolist([aws_subnet.private["use1-az1"].id, aws_subnet.private["use1-az2"].id])
    error_message = "subnet_ids must follow the zone order"
  }
  assert {
    condition     = alltrue([for s in aws_subnet.private : !s.map_public_ip_on_launch])
    error_message = "subnets must be private"
  }
  assert {
    condition     = length(aws_route_table.private[0].route) == 0 && keys(aws_route_table_association.private) == ["use1-az1", "use1-az2"]
    error_message = "one route table without routes (no IGW, no NAT), associated with every subnet"
  }
  assert {
    condition     = length(aws_default_security_group.this[0].ingress) == 0 && length(aws_default_security_group.this[0].egress) == 0
    error_message = "the default security group must have no rules"
  }
  assert {
    condition     = aws_vpc_endpoint.s3[0].vpc_endpoint_type == "Gateway" && aws_vpc_endpoint.s3[0].service_name == "com.amazonaws.us-east-1.s3"
    error_message = "an S3 gateway endpoint must be created"
  }
  assert {
    condition     = aws_vpc_endpoint.s3[0].route_table_ids == toset([aws_route_table.private[0].id])
    error_message = "the S3 gateway endpoint must be on the private route table"
  }
  assert {
    condition     = keys(aws_vpc_endpoint.interface) == ["ecr.api", "ecr.dkr", "logs"]
    error_message = "by default only what Batch on Fargate needs (ECR api/dkr, logs): each interface endpoint costs per zone-hour"
  }
  assert {
    condition = alltrue([for svc, ep in aws_vpc_endpoint.interface :
      ep.private_dns_enabled && ep.vpc_endpoint_type == "Interface" && ep.service_name == "com.amazonaws.us-east-1.${svc}" &&
    ep.security_group_ids == toset([aws_security_group.endpoints[0].id]) && ep.subnet_ids == toset(output.subnet_ids)])
    error_message = "interface endpoints must use private DNS, the endpoints SG and every subnet"
  }
  assert {
    condition     = keys(aws_vpc_security_group_ingress_rule.endpoints_https) == ["batch", "lambda"]
    error_message = "one ingress rule per workload security group"
  }
  assert {
    condition = alltrue([for k, r in aws_vpc_security_group_ingress_rule.endpoints_https :
      r.referenced_security_group_id == local.workload_security_groups[k] && r.cidr_ipv4 == null &&
    r.from_port == 443 && r.to_port == 443 && r.security_group_id == aws_security_group.endpoints[0].id])
    error_message = "endpoints must accept HTTPS from the Lambda and Batch security groups only, not from the VPC CIDR"
  }
  assert {
    condition     = keys(aws_vpc_security_group_egress_rule.to_endpoints) == ["batch", "lambda"] && alltrue([for r in aws_vpc_security_group_egress_rule.to_endpoints : r.referenced_security_group_id == aws_security_group.endpoints[0].id && r.to_port == 443])
    error_message = "Lambda and Batch must reach the endpoints SG on 443"
  }
  assert {
    condition     = alltrue([for r in aws_vpc_security_group_egress_rule.to_s3 : r.prefix_list_id == "pl-1111bbbb" && r.from_port == 443])
    error_message = "Lambda and Batch must reach S3 through the gateway endpoint's prefix list"
  }
  assert {
    condition     = length(aws_vpc_security_group_egress_rule.to_internet) == 0
    error_message = "no internet egress by default"
  }
  assert {
    condition     = length(aws_vpc_endpoint_policy.s3) == 0 && output.s3_endpoint_policy == null
    error_message = "without s3_bucket_arns the gateway endpoint keeps the default policy"
  }
  assert {
    condition     = aws_flow_log.this[0].vpc_id == "vpc-0123abcd" && aws_flow_log.this[0].traffic_type == "ALL" && aws_cloudwatch_log_group.flow_logs[0].retention_in_days == 365
    error_message = "flow logs of all traffic must go to a log group kept for a year"
  }
  assert {
    condition     = one(data.aws_iam_policy_document.flow_logs[0].statement).resources == toset(["arn:aws:logs:us-east-1:123456789012:log-group:/aws/vpc/test-net-flow-logs:*"])
    error_message = "the flow log role may only write to its own log group"
  }
  assert {
    condition     = output.vpc_id == "vpc-0123abcd" && length(output.subnet_ids) == 2 && keys(output.vpc_endpoint_ids) == ["ecr.api", "ecr.dkr", "logs", "s3"]
    error_message = "outputs must describe the VPC, subnets and every endpoint"
  }
  assert {
    condition     = aws_vpc.this[0].tags["Project"] == "inferstack-test" && aws_security_group.lambda.tags["Project"] == "inferstack-test" && aws_vpc_endpoint.interface["logs"].tags["Project"] == "inferstack-test"
    error_message = "tags must be merged into every resource"
  }
}

run "excluded_zone_skipped" {
  command = plan

  variables {
    az_count = 3
  }

  assert {
    condition     = keys(aws_subnet.private) == ["use1-az1", "use1-az2", "use1-az4"]
    error_message = "use1-az3 (no Lambda for VPC subnets) must be skipped in us-east-1 by default"
  }
  assert {
    condition     = aws_subnet.private["use1-az4"].cidr_block == "10.42.48.0/20"
    error_message = "use1-az4 takes the fourth slot whichever zones come before it"
  }
}

run "no_exclusion_when_asked" {
  command = plan

  variables {
    az_count          = 3
    excluded_zone_ids = []
  }

  assert {
    condition     = keys(aws_subnet.private) == ["use1-az1", "use1-az2", "use1-az3"]
    error_message = "excluded_zone_ids = [] must exclude nothing"
  }
}

run "zone_without_an_endpoint_service_skipped" {
  command = plan

  # us-east-1b (use1-az1 here) does not offer the endpoint services.
  override_data {
    target = data.aws_vpc_endpoint_service.interface
    values = { availability_zones = ["us-east-1a", "us-east-1c", "us-east-1d", "us-east-1e", "us-east-1f"] }
  }

  assert {
    condition     = keys(aws_subnet.private) == ["use1-az2", "use1-az4"]
    error_message = "zones where an endpoint service is not offered must not be chosen"
  }
  assert {
    condition     = aws_subnet.private["use1-az2"].cidr_block == "10.42.16.0/20" && aws_subnet.private["use1-az4"].cidr_block == "10.42.48.0/20"
    error_message = "a zone's CIDR block depends on its zone number only"
  }
}

run "explicit_zone_ids_and_cidr" {
  command = plan

  variables {
    vpc_cidr              = "10.1.0.0/20"
    availability_zone_ids = ["use1-az5", "use1-az2"]
    subnet_newbits        = 3
  }

  assert {
    condition     = [for s in aws_subnet.private : s.cidr_block] == ["10.1.2.0/23", "10.1.8.0/23"]
    error_message = "one subnet per given zone ID, in its zone number's slot of the VPC CIDR"
  }
  assert {
    condition     = tolist(output.availability_zone_ids) == tolist(["use1-az5", "use1-az2"]) && tolist(output.availability_zones) == tolist(["us-east-1f", "us-east-1c"])
    error_message = "outputs must follow the given order"
  }
}

run "explicit_excluded_zone_refused" {
  command = plan
  variables {
    availability_zone_ids = ["use1-az1", "use1-az3"]
  }
  expect_failures = [terraform_data.zones]
}

run "explicit_zone_without_endpoint_service_refused" {
  command = plan
  override_data {
    target = data.aws_vpc_endpoint_service.interface
    values = { availability_zones = ["us-east-1a", "us-east-1c"] }
  }
  variables {
    availability_zone_ids = ["use1-az6", "use1-az1"]
  }
  expect_failures = [terraform_data.zones]
}

run "too_few_eligible_zones" {
  command = plan
  variables {
    az_count = 6 # five zones left once use1-az3 is excluded
  }
  expect_failures = [terraform_data.zones]
}

run "zone_slot_outside_the_cidr" {
  command = plan
  variables {
    availability_zone_ids = ["use1-az5"]
    subnet_newbits        = 2 # four slots; use1-az5 needs the fifth
  }
  expect_failures = [aws_subnet.private]
}

run "zone_name_instead_of_id" {
  command = plan
  variables {
    availability_zone_ids = ["us-east-1a"]
  }
  expect_failures = [var.availability_zone_ids]
}

run "s3_endpoint_policy_limited_to_stack_buckets" {
  command = apply

  variables {
    s3_bucket_arns = ["arn:aws:s3:::test-net-models", "arn:aws:s3:::test-net-data-123456789012"]
  }

  assert {
    condition     = aws_vpc_endpoint_policy.s3[0].vpc_endpoint_id == aws_vpc_endpoint.s3[0].id && aws_vpc_endpoint_policy.s3[0].policy == data.aws_iam_policy_document.s3_endpoint[0].json
    error_message = "the gateway endpoint must get the policy document"
  }
  assert {
    condition = [for s in data.aws_iam_policy_document.s3_endpoint[0].statement : s.sid] == ["StackBuckets", "EcrImageLayers"] && alltrue([
      for s in data.aws_iam_policy_document.s3_endpoint[0].statement : s.effect == "Allow" && one(s.principals).identifiers == toset(["*"])
    ])
    error_message = "two allow statements: the stack's buckets and ECR's image layers"
  }
  assert {
    condition = data.aws_iam_policy_document.s3_endpoint[0].statement[0].resources == toset([
      "arn:aws:s3:::test-net-models", "arn:aws:s3:::test-net-models/*",
      "arn:aws:s3:::test-net-data-123456789012", "arn:aws:s3:::test-net-data-123456789012/*",
    ]) && data.aws_iam_policy_document.s3_endpoint[0].statement[0].actions == toset(["s3:GetObject", "s3:PutObject", "s3:ListBucket"])
    error_message = "the workloads may get, put and list in the stack's buckets only"
  }
  assert {
    condition     = data.aws_iam_policy_document.s3_endpoint[0].statement[1].resources == toset(["arn:aws:s3:::prod-us-east-1-starport-layer-bucket/*"]) && data.aws_iam_policy_document.s3_endpoint[0].statement[1].actions == toset(["s3:GetObject"])
    error_message = "image pulls may read the region's ECR layer bucket"
  }
}

run "s3_endpoint_policy_without_ecr" {
  command = plan

  variables {
    s3_bucket_arns      = ["arn:aws:s3:::test-net-models"]
    interface_endpoints = ["logs"]
  }

  assert {
    condition     = [for s in data.aws_iam_policy_document.s3_endpoint[0].statement : s.sid] == ["StackBuckets"]
    error_message = "no ECR layer bucket when nothing pulls images from ECR"
  }
}

run "bad_bucket_arn" {
  command = plan
  variables {
    s3_bucket_arns = ["test-net-models"]
  }
  expect_failures = [var.s3_bucket_arns]
}

run "no_endpoints" {
  command = plan

  variables {
    create_vpc_endpoints = false
    s3_bucket_arns       = ["arn:aws:s3:::test-net-models"]
  }

  assert {
    condition     = length(aws_vpc_endpoint.interface) == 0 && length(aws_vpc_endpoint.s3) == 0 && length(aws_security_group.endpoints) == 0 && length(aws_vpc_endpoint_policy.s3) == 0
    error_message = "no endpoints, endpoint policy or endpoint SG when create_vpc_endpoints is false"
  }
  assert {
    condition     = length(aws_vpc_security_group_egress_rule.to_endpoints) == 0 && length(aws_vpc_security_group_ingress_rule.endpoints_https) == 0 && alltrue([for r in aws_vpc_security_group_egress_rule.to_s3 : r.prefix_list_id == "pl-0000aaaa"])
    error_message = "S3 egress must use the region's prefix list looked up by name"
  }
  assert {
    condition     = length(data.aws_vpc_endpoint_service.interface) == 0 && keys(aws_subnet.private) == ["use1-az1", "use1-az2"]
    error_message = "without endpoints, zones are chosen without looking up endpoint services"
  }
}

run "custom_endpoint_list" {
  command = plan

  variables {
    interface_endpoints = ["logs", "batch"]
  }

  assert {
    condition     = keys(aws_vpc_endpoint.interface) == ["batch", "logs"]
    error_message = "only the listed interface endpoints are created"
  }
  assert {
    condition     = keys(data.aws_vpc_endpoint_service.interface) == ["batch", "logs"]
    error_message = "the zones of every listed service must be looked up"
  }
}

run "bring_your_own_vpc" {
  command = apply

  variables {
    create_vpc      = false
    vpc_id          = "vpc-0aaa1111"
    subnet_ids      = ["subnet-0bbb2222", "subnet-0aaa1111"]
    route_table_ids = ["rtb-0aaa1111"]
    s3_bucket_arns  = ["arn:aws:s3:::test-net-models"]
  }

  assert {
    condition     = length(aws_vpc.this) == 0 && length(aws_subnet.private) == 0 && length(aws_route_table.private) == 0 && length(aws_default_security_group.this) == 0
    error_message = "no VPC resources may be created for a brought VPC"
  }
  assert {
    condition     = length(data.aws_availability_zones.available) == 0 && length(output.availability_zone_ids) == 0
    error_message = "zones are not chosen for a brought VPC"
  }
  assert {
    condition     = aws_security_group.lambda.vpc_id == "vpc-0aaa1111" && aws_vpc_endpoint.s3[0].route_table_ids == toset(["rtb-0aaa1111"])
    error_message = "security groups and endpoints must go into the brought VPC and route tables"
  }
  assert {
    condition     = alltrue([for k, r in aws_vpc_security_group_ingress_rule.endpoints_https : r.referenced_security_group_id == local.workload_security_groups[k] && r.cidr_ipv4 == null])
    error_message = "endpoint ingress must come from the workload security groups in a brought VPC too"
  }
  assert {
    condition     = length(aws_vpc_endpoint_policy.s3) == 1
    error_message = "the brought VPC's gateway endpoint must get the stack-bucket policy too"
  }
  # Both mocked subnets are in the same zone: an interface endpoint takes one subnet per zone.
  assert {
    condition     = alltrue([for ep in aws_vpc_endpoint.interface : ep.subnet_ids == toset(["subnet-0aaa1111"])])
    error_message = "interface endpoints must take one brought subnet per zone (the lowest id)"
  }
  assert {
    condition     = output.subnet_ids == tolist(["subnet-0bbb2222", "subnet-0aaa1111"]) && output.vpc_id == "vpc-0aaa1111"
    error_message = "outputs must pass the brought ids through"
  }
}

run "brought_subnets_outside_endpoint_zones_refused" {
  command = plan
  override_data {
    target = data.aws_vpc_endpoint_service.interface
    values = { availability_zones = ["us-east-1a", "us-east-1c"] }
  }
  variables {
    create_vpc      = false
    vpc_id          = "vpc-0aaa1111"
    subnet_ids      = ["subnet-0aaa1111"]
    route_table_ids = ["rtb-0aaa1111"]
  }
  expect_failures = [aws_vpc_endpoint.interface]
}

run "brought_subnet_in_excluded_zone_warned" {
  command = plan
  override_data {
    target = data.aws_subnet.existing
    values = { availability_zone = "us-east-1e", availability_zone_id = "use1-az3" }
  }
  variables {
    create_vpc      = false
    vpc_id          = "vpc-0aaa1111"
    subnet_ids      = ["subnet-0aaa1111"]
    route_table_ids = ["rtb-0aaa1111"]
  }
  expect_failures = [check.brought_subnets_zones]
}

run "internet_egress_and_no_flow_logs" {
  command = plan

  variables {
    allow_https_egress_to_internet = true
    enable_flow_logs               = false
  }

  assert {
    condition     = alltrue([for r in aws_vpc_security_group_egress_rule.to_internet : r.cidr_ipv4 == "0.0.0.0/0" && r.to_port == 443]) && length(aws_vpc_security_group_egress_rule.to_internet) == 2
    error_message = "HTTPS to the internet for both workload SGs when allowed"
  }
  assert {
    condition     = length(aws_flow_log.this) == 0 && length(aws_cloudwatch_log_group.flow_logs) == 0 && length(aws_iam_role.flow_logs) == 0
    error_message = "no flow log resources when enable_flow_logs is false"
  }
}

run "flow_logs_settings" {
  command = plan

  variables {
    flow_logs = {
      retention_days           = 30
      kms_key_arn              = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
      traffic_type             = "REJECT"
      max_aggregation_interval = 60
    }
  }

  assert {
    condition     = aws_cloudwatch_log_group.flow_logs[0].kms_key_id == var.flow_logs.kms_key_arn && aws_cloudwatch_log_group.flow_logs[0].retention_in_days == 30
    error_message = "flow log group must use the given key and retention"
  }
  assert {
    condition     = aws_flow_log.this[0].traffic_type == "REJECT" && aws_flow_log.this[0].max_aggregation_interval == 60
    error_message = "flow log settings must be passed through"
  }
}

run "invalid_cidr" {
  command = plan
  variables {
    vpc_cidr = "10.42.0.0/8"
  }
  expect_failures = [var.vpc_cidr]
}

run "not_a_cidr" {
  command = plan
  variables {
    vpc_cidr = "10.42.0.300/16"
  }
  expect_failures = [var.vpc_cidr]
}

run "byo_requires_vpc_id" {
  command = plan
  variables {
    create_vpc      = false
    subnet_ids      = ["subnet-0aaa1111"]
    route_table_ids = ["rtb-0aaa1111"]
  }
  expect_failures = [var.vpc_id]
}

run "byo_requires_subnets" {
  command = plan
  variables {
    create_vpc      = false
    vpc_id          = "vpc-0aaa1111"
    route_table_ids = ["rtb-0aaa1111"]
  }
  expect_failures = [var.subnet_ids]
}

run "byo_requires_route_tables_for_s3_endpoint" {
  command = plan
  variables {
    create_vpc = false
    vpc_id     = "vpc-0aaa1111"
    subnet_ids = ["subnet-0aaa1111"]
  }
  expect_failures = [var.route_table_ids]
}

run "bad_subnet_id" {
  command = plan
  variables {
    create_vpc      = false
    vpc_id          = "vpc-0aaa1111"
    subnet_ids      = ["sn-1"]
    route_table_ids = ["rtb-0aaa1111"]
  }
  expect_failures = [var.subnet_ids]
}

run "unknown_interface_endpoint" {
  command = plan
  variables {
    interface_endpoints = ["kms", "dynamodb-typo"]
  }
  expect_failures = [var.interface_endpoints]
}

run "az_count_out_of_range" {
  command = plan
  variables {
    az_count = 0
  }
  expect_failures = [var.az_count]
}

run "bad_flow_log_retention" {
  command = plan
  variables {
    flow_logs = { retention_days = 10 }
  }
  expect_failures = [var.flow_logs]
}

run "bad_name_prefix" {
  command = plan
  variables {
    name_prefix = "-x"
  }
  expect_failures = [var.name_prefix]
}
