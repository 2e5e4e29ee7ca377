output "sns_topic_arn" {
  description = "ARN of the topic alarms notify (created or given; null when neither)."
  value       = local.topic_arn
}

output "dashboard_name" {
  description = "Name of the CloudWatch dashboard (null when create_dashboard is false)."
  value       = var.create_dashboard ? aws_cloudwatch_dashboard.this[0].dashboard_name : null
}

output "dashboard_arn" {
  description = "ARN of the CloudWatch dashboard (null when create_dashboard is false)."
  value       = var.create_dashboard ? aws_cloudwatch_dashboard.this[0].dashboard_arn : null
}

output "alarm_arns" {
  description = "ARNs of the created alarms."
  value       = local.alarm_arns
}

output "alarm_names" {
  description = "Names of the created alarms."
  value = concat(
    aws_cloudwatch_metric_alarm.api_5xx_rate[*].alarm_name,
    aws_cloudwatch_metric_alarm.api_p99_latency[*].alarm_name,
    values(aws_cloudwatch_metric_alarm.lambda_errors)[*].alarm_name,
    values(aws_cloudwatch_metric_alarm.lambda_throttles)[*].alarm_name,
    aws_cloudwatch_metric_alarm.dlq_not_empty[*].alarm_name,
    aws_cloudwatch_metric_alarm.batch_images_failed[*].alarm_name,
    aws_cloudwatch_metric_alarm.canary_error_rate[*].alarm_name,
    aws_cloudwatch_metric_alarm.canary_p99_latency[*].alarm_name,
    aws_cloudwatch_metric_alarm.canary_init_failures[*].alarm_name,
  )
}

output "canary_alarm_names" {
  description = "Names of the canary's candidate alarms by purpose (error_rate, p99_latency, init_failures); empty without a canary."
  value = merge(
    { for a in aws_cloudwatch_metric_alarm.canary_error_rate : "error_rate" => a.alarm_name },
    { for a in aws_cloudwatch_metric_alarm.canary_p99_latency : "p99_latency" => a.alarm_name },
    { for a in aws_cloudwatch_metric_alarm.canary_init_failures : "init_failures" => a.alarm_name },
  )
}

output "batch_job_failed_rule_arn" {
  description = "ARN of the EventBridge rule forwarding failed Batch jobs to the topic (null when not created)."
  value       = one(aws_cloudwatch_event_rule.batch_job_failed[*].arn)
}

output "xray_sampling_rule_arn" {
  description = "ARN of the X-Ray sampling rule (null when create_xray_sampling_rule is false)."
  value       = one(aws_xray_sampling_rule.this[*].arn)
}
