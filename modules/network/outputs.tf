output "vpc_id" {
  description = "Id of the VPC (created or given)."
  value       = local.vpc_id
}

output "vpc_cidr_block" {
  description = "IPv4 CIDR block of the VPC."
  value       = local.vpc_cidr
}

output "subnet_ids" {
  description = "Ids of the private subnets the functions and jobs run in."
  value       = local.subnet_ids
}

output "availability_zone_ids" {
  description = "Zone IDs of the created subnets, in the order of subnet_ids (empty for a brought VPC)."
  value       = local.zone_ids
}

output "availability_zones" {
  description = "Zone names of the created subnets in this account, in the order of subnet_ids (empty for a brought VPC)."
  value       = [for id in local.zone_ids : lookup(local.zone_names, id, id)]
}

output "route_table_ids" {
  description = "Route tables of the private subnets (created or given)."
  value       = local.route_table_ids
}

output "lambda_security_group_id" {
  description = "Security group for the Lambda functions: HTTPS egress to the VPC endpoints and S3 only."
  value       = aws_security_group.lambda.id
}

output "batch_security_group_id" {
  description = "Security group for the Batch Fargate jobs: HTTPS egress to the VPC endpoints and S3 only."
  value       = aws_security_group.batch.id
}

output "endpoints_security_group_id" {
  description = "Security group of the interface endpoints: HTTPS from the Lambda and Batch groups only (null when create_vpc_endpoints is false)."
  value       = var.create_vpc_endpoints ? aws_security_group.endpoints[0].id : null
}

output "s3_prefix_list_id" {
  description = "Id of the region's S3 prefix list that the workload security groups may reach."
  value       = local.s3_prefix_list_id
}

output "vpc_endpoint_ids" {
  description = "Ids of the VPC endpoints by service (\"s3\" for the gateway endpoint); empty when create_vpc_endpoints is false."
  value = merge(
    { for svc, ep in aws_vpc_endpoint.interface : svc => ep.id },
    var.create_vpc_endpoints ? { s3 = aws_vpc_endpoint.s3[0].id } : {},
  )
}

output "s3_endpoint_policy" {
  description = "Policy of the S3 gateway endpoint (null when s3_bucket_arns is empty or create_vpc_endpoints is false: AWS's default full access)."
  value       = length(aws_vpc_endpoint_policy.s3) > 0 ? aws_vpc_endpoint_policy.s3[0].policy : null
}

output "flow_log_id" {
  description = "Id of the VPC flow log (null when enable_flow_logs is false)."
  value       = var.enable_flow_logs ? aws_flow_log.this[0].id : null
}

output "flow_log_group_name" {
  description = "CloudWatch Logs group receiving the flow logs (null when enable_flow_logs is false)."
  value       = var.enable_flow_logs ? aws_cloudwatch_log_group.flow_logs[0].name : null
}
