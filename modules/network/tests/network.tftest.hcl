# Module logic only: the AWS provider is mocked, nothing is created anywhere.

mock_provider "aws" {
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_caller_identity" {
    defaults = { account_id = "123456789012", arn = "arn:aws:iam::123456789012:user/test", user_id = "AIDTEST" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws", dns_suffix = "amazonaws.com" }
  }
  mock_data "aws_availability_zones" {
    defaults = { names = ["eu-west-1a", "eu-west-1b", "eu-west-1c"] }
  }
  mock_data "aws_vpc" {
    defaults = { cidr_block = "172.16.0.0/16" }
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
    defaults = { arn = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/vpc/test-net-flow-logs" }
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
    condition     = [for s in aws_subnet.private : s.availability_zone] == ["eu-west-1a", "eu-west-1b"]
    error_message = "two private subnets in the first two zones by default"
  }
  assert {
    condition     = [for s in aws_subnet.private : s.cidr_block] == ["10.42.0.0/20", "10.42.16.0/20"]
    error_message = "subnets must be carved from the VPC CIDR with subnet_newbits"
  }
  assert {
    condition     = alltrue([for s in aws_subnet.private : !s.map_public_ip_on_launch])
    error_message = "subnets must be private"
  }
  assert {
    condition     = length(aws_route_table.private[0].route) == 0 && length(aws_route_table_association.private) == 2
    error_message = "one route table without routes (no IGW, no NAT), associated with every subnet"
  }
  assert {
    condition     = length(aws_default_security_group.this[0].ingress) == 0 && length(aws_default_security_group.this[0].egress) == 0
    error_message = "the default security group must have no rules"
  }
  assert {
    condition     = aws_vpc_endpoint.s3[0].vpc_endpoint_type == "Gateway" && aws_vpc_endpoint.s3[0].service_name == "com.amazonaws.eu-west-1.s3"
    error_message = "an S3 gateway endpoint must be created"
  }
  assert {
    condition     = aws_vpc_endpoint.s3[0].route_table_ids == toset([aws_route_table.private[0].id])
    error_message = "the S3 gateway endpoint must be on the private route table"
  }
  assert {
    condition     = keys(aws_vpc_endpoint.interface) == ["ecr.api", "ecr.dkr", "kms", "logs", "monitoring", "sts", "xray"]
    error_message = "the seven default interface endpoints must be created"
  }
  assert {
    condition = alltrue([for svc, ep in aws_vpc_endpoint.interface :
      ep.private_dns_enabled && ep.vpc_endpoint_type == "Interface" && ep.service_name == "com.amazonaws.eu-west-1.${svc}" &&
    ep.security_group_ids == toset([aws_security_group.endpoints[0].id]) && length(ep.subnet_ids) == 2])
    error_message = "interface endpoints must use private DNS, the endpoints SG and every subnet"
  }
  assert {
    condition     = aws_vpc_security_group_ingress_rule.endpoints_https[0].cidr_ipv4 == "10.42.0.0/16" && aws_vpc_security_group_ingress_rule.endpoints_https[0].from_port == 443
    error_message = "endpoints must accept HTTPS from the VPC CIDR only"
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
    condition     = aws_flow_log.this[0].vpc_id == "vpc-0123abcd" && aws_flow_log.this[0].traffic_type == "ALL" && aws_cloudwatch_log_group.flow_logs[0].retention_in_days == 365
    error_message = "flow logs of all traffic must go to a log group kept for a year"
  }
  assert {
    condition     = one(data.aws_iam_policy_document.flow_logs[0].statement).resources == toset(["arn:aws:logs:eu-west-1:123456789012:log-group:/aws/vpc/test-net-flow-logs:*"])
    error_message = "the flow log role may only write to its own log group"
  }
  assert {
    condition     = output.vpc_id == "vpc-0123abcd" && length(output.subnet_ids) == 2 && length(output.vpc_endpoint_ids) == 8
    error_message = "outputs must describe the VPC, subnets and all eight endpoints"
  }
  assert {
    condition     = aws_vpc.this[0].tags["Project"] == "inferstack-test" && aws_security_group.lambda.tags["Project"] == "inferstack-test" && aws_vpc_endpoint.interface["kms"].tags["Project"] == "inferstack-test"
    error_message = "tags must be merged into every resource"
  }
}

run "explicit_zones_and_cidr" {
  command = plan

  variables {
    vpc_cidr           = "10.1.0.0/20"
    availability_zones = ["eu-west-1c", "eu-west-1a", "eu-west-1b"]
    subnet_newbits     = 2
  }

  assert {
    condition     = [for s in aws_subnet.private : s.cidr_block] == ["10.1.0.0/22", "10.1.4.0/22", "10.1.8.0/22"]
    error_message = "one subnet per given zone, carved with subnet_newbits"
  }
  assert {
    condition     = length(data.aws_availability_zones.available) == 0
    error_message = "zones must not be looked up when given"
  }
}

run "no_endpoints" {
  command = plan

  variables {
    create_vpc_endpoints = false
  }

  assert {
    condition     = length(aws_vpc_endpoint.interface) == 0 && length(aws_vpc_endpoint.s3) == 0 && length(aws_security_group.endpoints) == 0
    error_message = "no endpoints or endpoint SG when create_vpc_endpoints is false"
  }
  assert {
    condition     = length(aws_vpc_security_group_egress_rule.to_endpoints) == 0 && alltrue([for r in aws_vpc_security_group_egress_rule.to_s3 : r.prefix_list_id == "pl-0000aaaa"])
    error_message = "S3 egress must use the region's prefix list looked up by name"
  }
}

run "custom_endpoint_list" {
  command = plan

  variables {
    interface_endpoints = ["logs", "sqs"]
  }

  assert {
    condition     = keys(aws_vpc_endpoint.interface) == ["logs", "sqs"]
    error_message = "only the listed interface endpoints are created"
  }
}

run "bring_your_own_vpc" {
  command = apply

  variables {
    create_vpc      = false
    vpc_id          = "vpc-0aaa1111"
    subnet_ids      = ["subnet-0aaa1111", "subnet-0bbb2222"]
    route_table_ids = ["rtb-0aaa1111"]
  }

  assert {
    condition     = length(aws_vpc.this) == 0 && length(aws_subnet.private) == 0 && length(aws_route_table.private) == 0 && length(aws_default_security_group.this) == 0
    error_message = "no VPC resources may be created for a brought VPC"
  }
  assert {
    condition     = aws_security_group.lambda.vpc_id == "vpc-0aaa1111" && aws_vpc_endpoint.s3[0].route_table_ids == toset(["rtb-0aaa1111"])
    error_message = "security groups and endpoints must go into the brought VPC and route tables"
  }
  assert {
    condition     = aws_vpc_security_group_ingress_rule.endpoints_https[0].cidr_ipv4 == "172.16.0.0/16"
    error_message = "endpoint ingress must use the brought VPC's CIDR"
  }
  assert {
    condition     = output.subnet_ids == tolist(["subnet-0aaa1111", "subnet-0bbb2222"]) && output.vpc_id == "vpc-0aaa1111"
    error_message = "outputs must pass the brought ids through"
  }
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
      kms_key_arn              = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
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
