# Log groups are not created here: each module that owns a function or job (realtime_api,
# batch, network) creates its log groups with retention and KMS encryption, so that a log group
# exists before its first writer and is destroyed with it. This module only reads them.

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  region     = data.aws_region.current.name
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  topic_arn     = var.create_sns_topic ? aws_sns_topic.alarms[0].arn : var.sns_topic_arn
  has_topic     = var.create_sns_topic || var.sns_topic_arn != null # known at plan time, unlike the ARN
  alarm_actions = local.topic_arn == null ? [] : [local.topic_arn]

  has_api        = var.api_name != null
  has_predict    = var.predict_function_name != null
  has_dispatcher = var.dispatcher_function_name != null
  has_queue      = var.queue_name != null
  has_dlq        = var.dlq_name != null
  has_job_queue  = var.job_queue_name != null
  # Batch worker metrics exist wherever the batch path is deployed, known by its queue or job queue.
  has_batch = local.has_job_queue || local.has_dispatcher

  job_queue_arn = coalesce(var.job_queue_arn, "arn:${local.partition}:batch:${local.region}:${local.account_id}:job-queue/${coalesce(var.job_queue_name, "-")}")

  functions = merge(
    local.has_predict ? { predict = var.predict_function_name } : {},
    local.has_dispatcher ? { dispatcher = var.dispatcher_function_name } : {},
  )

  api_dims = local.has_api ? ["ApiName", var.api_name, "Stage", var.api_stage_name] : []
  ns       = var.metric_namespace
  rt       = var.realtime_metrics
  bm       = var.batch_metrics
}

################################################################################
# Alarm topic
################################################################################

resource "aws_sns_topic" "alarms" {
  count = var.create_sns_topic ? 1 : 0

  name              = "${var.name_prefix}-alarms"
  kms_master_key_id = var.kms_key_arn
  tags              = var.tags
}

data "aws_iam_policy_document" "topic" {
  count = var.create_sns_topic ? 1 : 0

  statement {
    sid     = "CloudWatchAlarmsOfThisStack"
    effect  = "Allow"
    actions = ["sns:Publish"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    resources = [aws_sns_topic.alarms[0].arn]
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:cloudwatch:${local.region}:${local.account_id}:alarm:${var.name_prefix}-*"]
    }
  }

  statement {
    sid     = "EventBridgeRulesOfThisStack"
    effect  = "Allow"
    actions = ["sns:Publish"]
    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }
    resources = [aws_sns_topic.alarms[0].arn]
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:events:${local.region}:${local.account_id}:rule/${var.name_prefix}-*"]
    }
  }

  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["sns:Publish"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    resources = [aws_sns_topic.alarms[0].arn]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_sns_topic_policy" "alarms" {
  count = var.create_sns_topic ? 1 : 0

  arn    = aws_sns_topic.alarms[0].arn
  policy = data.aws_iam_policy_document.topic[0].json
}

resource "aws_sns_topic_subscription" "email" {
  for_each = var.create_sns_topic ? toset(var.alarm_email_addresses) : toset([])

  topic_arn = aws_sns_topic.alarms[0].arn
  protocol  = "email"
  endpoint  = each.value
}

################################################################################
# Alarms
################################################################################

resource "aws_cloudwatch_metric_alarm" "api_5xx_rate" {
  count = var.create_alarms && local.has_api ? 1 : 0

  alarm_name          = "${var.name_prefix}-api-5xx-rate"
  alarm_description   = "More than ${var.alarm_thresholds.api_5xx_rate * 100}% of ${var.api_name}/${var.api_stage_name} requests answered 5xx."
  namespace           = "AWS/ApiGateway"
  metric_name         = "5XXError"
  dimensions          = { ApiName = var.api_name, Stage = var.api_stage_name }
  statistic           = "Average" # the average of 5XXError is the 5xx fraction of requests
  period              = var.alarm_thresholds.period_seconds
  evaluation_periods  = var.alarm_thresholds.evaluation_periods
  datapoints_to_alarm = var.alarm_thresholds.datapoints_to_alarm
  threshold           = var.alarm_thresholds.api_5xx_rate
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "api_p99_latency" {
  count = var.create_alarms && local.has_api ? 1 : 0

  alarm_name          = "${var.name_prefix}-api-p99-latency"
  alarm_description   = "p99 latency of ${var.api_name}/${var.api_stage_name} above ${var.alarm_thresholds.api_p99_latency_ms} ms."
  namespace           = "AWS/ApiGateway"
  metric_name         = "Latency"
  dimensions          = { ApiName = var.api_name, Stage = var.api_stage_name }
  extended_statistic  = "p99"
  period              = var.alarm_thresholds.period_seconds
  evaluation_periods  = var.alarm_thresholds.evaluation_periods
  datapoints_to_alarm = var.alarm_thresholds.datapoints_to_alarm
  threshold           = var.alarm_thresholds.api_p99_latency_ms
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "lambda_errors" {
  for_each = var.create_alarms ? local.functions : {}

  alarm_name          = "${var.name_prefix}-${each.key}-errors"
  alarm_description   = "Lambda function ${each.value} failed invocations (unhandled errors, timeouts, out of memory)."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = each.value }
  statistic           = "Sum"
  period              = var.alarm_thresholds.period_seconds
  evaluation_periods  = var.alarm_thresholds.evaluation_periods
  datapoints_to_alarm = var.alarm_thresholds.datapoints_to_alarm
  threshold           = var.alarm_thresholds.lambda_errors
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "lambda_throttles" {
  for_each = var.create_alarms ? local.functions : {}

  alarm_name          = "${var.name_prefix}-${each.key}-throttles"
  alarm_description   = "Lambda function ${each.value} was throttled (reserved concurrency or account limit reached)."
  namespace           = "AWS/Lambda"
  metric_name         = "Throttles"
  dimensions          = { FunctionName = each.value }
  statistic           = "Sum"
  period              = var.alarm_thresholds.period_seconds
  evaluation_periods  = var.alarm_thresholds.evaluation_periods
  datapoints_to_alarm = var.alarm_thresholds.datapoints_to_alarm
  threshold           = var.alarm_thresholds.lambda_throttles
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "dlq_not_empty" {
  count = var.create_alarms && local.has_dlq ? 1 : 0

  alarm_name          = "${var.name_prefix}-dlq-not-empty"
  alarm_description   = "Messages in the dead-letter queue ${var.dlq_name}: S3 events the dispatcher could not handle."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = var.dlq_name }
  statistic           = "Maximum"
  period              = max(var.alarm_thresholds.period_seconds, 60) # SQS publishes every minute
  evaluation_periods  = 1
  threshold           = var.alarm_thresholds.dlq_messages
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

resource "aws_cloudwatch_metric_alarm" "batch_images_failed" {
  count = var.create_alarms && local.has_batch ? 1 : 0

  alarm_name          = "${var.name_prefix}-batch-images-failed"
  alarm_description   = "Batch workers wrote error records for images they could not classify."
  namespace           = local.ns
  metric_name         = local.bm.images_failed
  dimensions          = { service = local.bm.worker_service }
  statistic           = "Sum"
  period              = max(var.alarm_thresholds.period_seconds, 60)
  evaluation_periods  = 1
  threshold           = var.alarm_thresholds.batch_images_failed
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
  tags                = var.tags
}

# AWS Batch publishes no CloudWatch metric for failed jobs; its state-change events do.
# The count depends on the queue's name, which is known at plan time, never on its ARN.
resource "aws_cloudwatch_event_rule" "batch_job_failed" {
  count = var.enable_batch_job_failure_notifications && local.has_job_queue ? 1 : 0

  name        = "${var.name_prefix}-batch-job-failed"
  description = "FAILED jobs of the ${var.job_queue_name} job queue"
  event_pattern = jsonencode({
    source        = ["aws.batch"]
    "detail-type" = ["Batch Job State Change"]
    detail = {
      status   = ["FAILED"]
      jobQueue = [local.job_queue_arn]
    }
  })
  tags = var.tags
}

resource "aws_cloudwatch_event_target" "batch_job_failed" {
  count = length(aws_cloudwatch_event_rule.batch_job_failed) > 0 && local.has_topic ? 1 : 0

  rule      = aws_cloudwatch_event_rule.batch_job_failed[0].name
  target_id = "alarm-topic"
  arn       = local.topic_arn
}

################################################################################
# X-Ray sampling
################################################################################

resource "aws_xray_sampling_rule" "this" {
  count = var.create_xray_sampling_rule ? 1 : 0

  rule_name      = "${var.name_prefix}-sampling"
  priority       = var.xray_sampling.priority
  reservoir_size = var.xray_sampling.reservoir_size
  fixed_rate     = var.xray_sampling.fixed_rate
  version        = 1
  service_name   = "${var.name_prefix}*"
  service_type   = "*"
  host           = "*"
  http_method    = "*"
  url_path       = "*"
  resource_arn   = "*"
  tags           = var.tags
}

################################################################################
# Dashboard
################################################################################

locals {
  period = var.dashboard_period_seconds

  api_widgets = [for w in [
    {
      type = "metric", width = 8, height = 6
      properties = {
        title = "API latency (ms)", region = local.region, view = "timeSeries", period = local.period
        metrics = [
          concat(["AWS/ApiGateway", "Latency"], local.api_dims, [{ stat = "p50", label = "p50" }]),
          concat(["AWS/ApiGateway", "Latency"], local.api_dims, [{ stat = "p90", label = "p90" }]),
          concat(["AWS/ApiGateway", "Latency"], local.api_dims, [{ stat = "p99", label = "p99" }]),
          concat(["AWS/ApiGateway", "IntegrationLatency"], local.api_dims, [{ stat = "p99", label = "integration p99" }]),
        ]
      }
    },
    {
      type = "metric", width = 8, height = 6
      properties = {
        title = "API requests and errors", region = local.region, view = "timeSeries", period = local.period, stat = "Sum"
        metrics = [
          concat(["AWS/ApiGateway", "Count"], local.api_dims, [{ label = "requests" }]),
          concat(["AWS/ApiGateway", "4XXError"], local.api_dims, [{ label = "4xx" }]),
          concat(["AWS/ApiGateway", "5XXError"], local.api_dims, [{ label = "5xx" }]),
        ]
      }
    },
  ] : w if local.has_api]

  predict_widgets = [for w in [
    {
      type = "metric", width = 8, height = 6
      properties = {
        title = "Predict function duration (ms)", region = local.region, view = "timeSeries", period = local.period
        metrics = [
          ["AWS/Lambda", "Duration", "FunctionName", var.predict_function_name, { stat = "p50", label = "p50" }],
          ["AWS/Lambda", "Duration", "FunctionName", var.predict_function_name, { stat = "p99", label = "p99" }],
        ]
      }
    },
    {
      type = "metric", width = 8, height = 6
      properties = {
        title = "Predict function invocations, errors, throttles", region = local.region, view = "timeSeries", period = local.period, stat = "Sum"
        metrics = [
          ["AWS/Lambda", "Invocations", "FunctionName", var.predict_function_name],
          ["AWS/Lambda", "Errors", "FunctionName", var.predict_function_name],
          ["AWS/Lambda", "Throttles", "FunctionName", var.predict_function_name],
        ]
      }
    },
    {
      type = "metric", width = 8, height = 6
      properties = {
        title = "Predict function concurrency", region = local.region, view = "timeSeries", period = local.period, stat = "Maximum"
        metrics = [
          ["AWS/Lambda", "ConcurrentExecutions", "FunctionName", var.predict_function_name],
          ["AWS/Lambda", "ProvisionedConcurrencySpilloverInvocations", "FunctionName", var.predict_function_name, { stat = "Sum" }],
        ]
      }
    },
    {
      type = "metric", width = 12, height = 6
      properties = {
        title = "Inference stages (ms, p50 / p99)", region = local.region, view = "timeSeries", period = local.period
        metrics = [
          for pair in setproduct([local.rt.decode_latency, local.rt.preprocess_latency, local.rt.infer_latency, local.rt.total_latency], ["p50", "p99"]) :
          [local.ns, pair[0], "service", local.rt.service, { stat = pair[1], label = "${pair[0]} ${pair[1]}" }]
        ]
      }
    },
    {
      type = "metric", width = 12, height = 6
      properties = {
        title = "Predictions and errors", region = local.region, view = "timeSeries", period = local.period, stat = "Sum"
        metrics = [
          [local.ns, local.rt.predictions, "service", local.rt.service],
          [local.ns, local.rt.errors, "service", local.rt.service],
        ]
      }
    },
  ] : w if local.has_predict]

  init_widgets = [for w in [
    {
      type = "log", width = 24, height = 6
      properties = {
        title   = "Cold starts: init duration (ms)", region = local.region, view = "timeSeries"
        query   = "SOURCE '${coalesce(var.predict_log_group_name, "-")}' | filter @type = \"REPORT\" and ispresent(@initDuration) | stats avg(@initDuration) as avg_init, max(@initDuration) as max_init, count(*) as cold_starts by bin(5m)"
        stacked = false
      }
    },
  ] : w if var.predict_log_group_name != null]

  queue_widgets = [for w in [
    {
      type = "metric", width = 12, height = 6
      properties = {
        title = "Queue depth", region = local.region, view = "timeSeries", period = local.period, stat = "Maximum"
        metrics = concat(
          [for m in [
            ["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", var.queue_name, { label = "queue visible" }],
            ["AWS/SQS", "ApproximateAgeOfOldestMessage", "QueueName", var.queue_name, { label = "oldest (s)", yAxis = "right" }],
          ] : m if local.has_queue],
          [for m in [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", var.dlq_name, { label = "DLQ visible" }]] : m if local.has_dlq],
        )
      }
    },
  ] : w if local.has_queue || local.has_dlq]

  dispatcher_widgets = [for w in [
    {
      type = "metric", width = 12, height = 6
      properties = {
        title = "Dispatcher", region = local.region, view = "timeSeries", period = local.period, stat = "Sum"
        metrics = [
          ["AWS/Lambda", "Invocations", "FunctionName", var.dispatcher_function_name],
          ["AWS/Lambda", "Errors", "FunctionName", var.dispatcher_function_name],
          ["AWS/Lambda", "Throttles", "FunctionName", var.dispatcher_function_name],
          [local.ns, local.bm.jobs_submitted, "service", local.bm.dispatcher_service],
          [local.ns, local.bm.images_dispatched, "service", local.bm.dispatcher_service],
        ]
      }
    },
  ] : w if local.has_dispatcher]

  batch_widgets = [for w in [
    {
      type = "metric", width = 12, height = 6
      properties = {
        title = "Batch images${local.has_job_queue ? " (${var.job_queue_name})" : ""}", region = local.region, view = "timeSeries", period = local.period, stat = "Sum"
        metrics = [
          [local.ns, local.bm.images_processed, "service", local.bm.worker_service, { label = "classified" }],
          [local.ns, local.bm.images_failed, "service", local.bm.worker_service, { label = "failed" }],
        ]
      }
    },
  ] : w if local.has_batch]

  # A canary rollout: the primary and the candidate model side by side, from the series the
  # function emits by ModelSha256 (the same dimensions the canary alarms watch), written as a
  # graph's metric array wants them: name, value, name, value.
  canary_metric_dims = { for role, dims in local.canary_dims : role => flatten([for k, v in dims : [k, v]]) }
  canary_widgets = [for w in [
    {
      type = "metric", width = 6, height = 6
      properties = {
        title = "Canary: answers by model", region = local.region, view = "timeSeries", period = local.period, stat = "Sum"
        metrics = [
          for pair in setproduct(keys(local.canary_dims), [local.rt.predictions, local.rt.errors]) :
          concat([local.ns, pair[1]], local.canary_metric_dims[pair[0]], [{ label = "${pair[0]} ${pair[1]}" }])
        ]
      }
    },
    {
      type = "metric", width = 6, height = 6
      properties = {
        title = "Canary: error rate by model (%)", region = local.region, view = "timeSeries", period = local.period, stat = "Sum"
        metrics = concat(
          [for role in keys(local.canary_dims) : [{
            expression = "100 * FILL(${role}_e, 0) / MAX([FILL(${role}_e, 0) + FILL(${role}_p, 0), 1])", label = "${role} error rate", id = "${role}_rate"
          }]],
          [for pair in setproduct(keys(local.canary_dims), ["e", "p"]) :
            concat([local.ns, pair[1] == "e" ? local.rt.errors : local.rt.predictions], local.canary_metric_dims[pair[0]], [{ id = "${pair[0]}_${pair[1]}", visible = false }])
          ],
        )
      }
    },
    {
      type = "metric", width = 6, height = 6
      properties = {
        title = "Canary: total latency by model (ms)", region = local.region, view = "timeSeries", period = local.period
        metrics = [
          for pair in setproduct(keys(local.canary_dims), ["p50", "p99"]) :
          concat([local.ns, local.rt.total_latency], local.canary_metric_dims[pair[0]], [{ stat = pair[1], label = "${pair[0]} ${pair[1]}" }])
        ]
      }
    },
    {
      type = "metric", width = 6, height = 6
      properties = {
        title = "Canary: top-1 probability by model", region = local.region, view = "timeSeries", period = local.period
        metrics = [
          for pair in setproduct(keys(local.canary_dims), ["Average", "p10"]) :
          concat([local.ns, local.rt.top_probability], local.canary_metric_dims[pair[0]], [{ stat = pair[1], label = "${pair[0]} ${lower(pair[1])}" }])
        ]
      }
    },
  ] : w if local.has_canary]

  alarm_arns = concat(
    aws_cloudwatch_metric_alarm.api_5xx_rate[*].arn,
    aws_cloudwatch_metric_alarm.api_p99_latency[*].arn,
    values(aws_cloudwatch_metric_alarm.lambda_errors)[*].arn,
    values(aws_cloudwatch_metric_alarm.lambda_throttles)[*].arn,
    aws_cloudwatch_metric_alarm.dlq_not_empty[*].arn,
    aws_cloudwatch_metric_alarm.batch_images_failed[*].arn,
    aws_cloudwatch_metric_alarm.canary_error_rate[*].arn,
    aws_cloudwatch_metric_alarm.canary_p99_latency[*].arn,
    aws_cloudwatch_metric_alarm.canary_init_failures[*].arn,
  )

  alarm_widgets = [for w in [
    {
      type       = "alarm", width = 24, height = 3
      properties = { title = "Alarms", alarms = local.alarm_arns }
    },
  ] : w if var.create_alarms && length(local.alarm_arns) > 0]

  widgets = concat(
    local.alarm_widgets, local.api_widgets, local.predict_widgets, local.init_widgets,
    local.canary_widgets, local.queue_widgets, local.dispatcher_widgets, local.batch_widgets,
  )
}

resource "aws_cloudwatch_dashboard" "this" {
  count = var.create_dashboard ? 1 : 0

  dashboard_name = var.name_prefix
  dashboard_body = jsonencode({
    widgets = concat(local.widgets, [for w in [
      {
        type       = "text", width = 24, height = 2
        properties = { markdown = "No parts of ${var.name_prefix} were given to the observability module." }
      },
    ] : w if length(local.widgets) == 0])
  })
}
