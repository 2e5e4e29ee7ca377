output "api_id" {
  description = "ID of the REST API."
  value       = aws_api_gateway_rest_api.this.id
}

output "api_name" {
  description = "Name of the REST API."
  value       = aws_api_gateway_rest_api.this.name
}

output "api_execution_arn" {
  description = "Execution ARN of the REST API (prefix of its method ARNs)."
  value       = aws_api_gateway_rest_api.this.execution_arn
}

output "stage_name" {
  description = "Name of the API stage."
  value       = aws_api_gateway_stage.this.stage_name
}

output "stage_arn" {
  description = "ARN of the API stage (the resource the web ACL is associated with)."
  value       = aws_api_gateway_stage.this.arn
}

output "invoke_url" {
  description = "Base URL of the stage."
  value       = aws_api_gateway_stage.this.invoke_url
}

output "predict_url" {
  description = "URL of POST /predict (send the API key in the x-api-key header)."
  value       = "${aws_api_gateway_stage.this.invoke_url}/${aws_api_gateway_resource.predict.path_part}"
}

output "api_key_id" {
  description = "ID of the default API key."
  value       = aws_api_gateway_api_key.this.id
}

output "api_key_value" {
  description = "Value of the default API key (x-api-key header)."
  value       = aws_api_gateway_api_key.this.value
  sensitive   = true
}

output "usage_plan_id" {
  description = "ID of the usage plan (attach more keys to it)."
  value       = aws_api_gateway_usage_plan.this.id
}

output "function_name" {
  description = "Name of the real-time function."
  value       = aws_lambda_function.this.function_name
}

output "function_arn" {
  description = "ARN of the real-time function (unqualified)."
  value       = aws_lambda_function.this.arn
}

output "function_version" {
  description = "Version published by the last deployment (the one `live` points to)."
  value       = aws_lambda_function.this.version
}

output "function_role_arn" {
  description = "ARN of the function's execution role."
  value       = aws_iam_role.function.arn
}

output "alias_name" {
  description = "Name of the alias API Gateway invokes."
  value       = aws_lambda_alias.live.name
}

output "alias_arn" {
  description = "ARN of the alias API Gateway invokes."
  value       = aws_lambda_alias.live.arn
}

output "layer_arn" {
  description = "ARN (with version) of the runtime layer the function uses: the published one or var.layer_arn."
  value       = local.layer_arn
}

output "log_group_names" {
  description = "Log groups of the module by purpose: function, api_access and (with WAF logging) waf."
  value       = local.log_group_names
}

output "web_acl_arn" {
  description = "ARN of the web ACL, null when enable_waf = false."
  value       = var.enable_waf ? aws_wafv2_web_acl.this[0].arn : null
}
