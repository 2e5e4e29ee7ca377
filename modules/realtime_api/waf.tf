###############################################################################
# WAFv2 web ACL (REGIONAL) on the API stage
#
# Rules, in order:
#   0 rate-limit-per-ip     block an IP over waf.rate_limit requests per window
#   1 body-size             block a request whose declared Content-Length exceeds
#                           waf.max_body_bytes, or whose body WAF can see is larger
#   2 aws-ip-reputation     AWSManagedRulesAmazonIpReputationList
#   3 aws-anonymous-ip      AWSManagedRulesAnonymousIpList (switch), hosting
#                           providers counted: server-side callers run there
#   4 aws-common            AWSManagedRulesCommonRuleSet; its body rules counted
#                           (they only label the request): see below
#   5 aws-common-body-non-binary
#                           block a request labelled by one of those body rules
#                           (size excepted) unless its Content-Type is one of
#                           the API's binary media types
#   6 aws-known-bad-inputs  AWSManagedRulesKnownBadInputsRuleSet (Log4j, ...)
#
# Why the body rules are split: the common rule set's XSS, LFI, RFI and SSRF
# body rules match text patterns in the first body_inspection_limit bytes. A
# raw JPEG or PNG (compressed data, EXIF text) can contain such byte sequences
# and would be refused with 403, although the function only ever decodes it as
# an image. So in the group they count (and label the request), and rule 5
# enforces them on every other body, JSON included, as AWS recommends for
# exceptions to managed rules (label match + scope statement:
# https://docs.aws.amazon.com/waf/latest/developerguide/web-acl-rule-group-override-options.html).
# SizeRestrictions_BODY (any body over 8 KB) is counted for every body: a JSON
# body carries a base64 image and is larger than that too.
#
# What the body-size rule can enforce: WAF receives at most the first
# body_inspection_limit (16-64 KB) of a body, so a size constraint on the body
# alone can never see a multi-megabyte image as larger than that window. The
# rule therefore compares the Content-Length header with the limit (a regex
# pattern set that matches exactly the decimal numbers above it), which every
# ordinary client sends; the size constraint on the body (oversize CONTINUE)
# adds an exact check for limits below the inspection window. A chunked request
# without Content-Length is not measured by WAF: API Gateway's 10 MB limit, the
# 6 MB Lambda payload limit and MAX_IMAGE_BYTES in the function still apply.
###############################################################################

locals {
  # Body rules of AWSManagedRulesCommonRuleSet and the labels they add
  # (https://docs.aws.amazon.com/waf/latest/developerguide/aws-managed-rule-groups-baseline.html).
  waf_common_body_rules = {
    CrossSiteScripting_BODY = "awswaf:managed:aws:core-rule-set:CrossSiteScripting_Body"
    GenericLFI_BODY         = "awswaf:managed:aws:core-rule-set:GenericLFI_Body"
    GenericRFI_BODY         = "awswaf:managed:aws:core-rule-set:GenericRFI_Body"
    EC2MetaDataSSRF_BODY    = "awswaf:managed:aws:core-rule-set:EC2MetaDataSSRF_Body"
  }
  # With no binary media type every body is text: the body rules then block as shipped.
  waf_split_body_rules = length(var.api.binary_media_types) > 0
  waf_common_count_rules = distinct(concat(
    ["SizeRestrictions_BODY"],
    local.waf_split_body_rules ? keys(local.waf_common_body_rules) : [],
    var.waf.common_rule_set_count_overrides,
  ))
  # Content-Type (lower-cased by the rule) that is exactly one of the binary
  # media types, with or without parameters ("image/jpeg; q=1").
  waf_binary_content_type_regex = format(
    "^(%s)[ \\t]*(;.*)?$",
    join("|", [for t in var.api.binary_media_types : replace(t, "/([.+])/", "\\$1")]),
  )

  waf_max_body_digits = tostring(var.waf.max_body_bytes)
  waf_max_body_len    = length(local.waf_max_body_digits)

  # Decimal numbers greater than N (k digits): any number with more than k
  # significant digits, or k digits sharing a prefix of N followed by a larger
  # digit. One pattern per case keeps each far below WAF's 200-character limit
  # (at most 9 patterns for N <= 10485760; a set holds 10).
  waf_content_length_patterns = concat(
    ["^0*[1-9][0-9]{${local.waf_max_body_len},}$"],
    [
      for i in range(local.waf_max_body_len) : format(
        "^0*%s[%d-9]%s$",
        substr(local.waf_max_body_digits, 0, i),
        tonumber(substr(local.waf_max_body_digits, i, 1)) + 1,
        local.waf_max_body_len - i - 1 > 0 ? "[0-9]{${local.waf_max_body_len - i - 1}}" : "",
      ) if tonumber(substr(local.waf_max_body_digits, i, 1)) < 9
    ],
  )
}

resource "aws_wafv2_regex_pattern_set" "content_length_over_limit" {
  count = var.enable_waf ? 1 : 0

  name        = "${local.api_name}-content-length-over-limit"
  description = "Content-Length values above ${var.waf.max_body_bytes} bytes"
  scope       = "REGIONAL"

  dynamic "regular_expression" {
    for_each = local.waf_content_length_patterns
    content {
      regex_string = regular_expression.value
    }
  }

  tags = var.tags
}

resource "aws_wafv2_web_acl" "this" {
  count = var.enable_waf ? 1 : 0

  name        = local.api_name
  description = "inferstack real-time API"
  scope       = "REGIONAL"

  default_action {
    allow {}
  }

  # KB_16 is the free default; only a larger window is written, so the default
  # configuration is the one AWS reports back.
  dynamic "association_config" {
    for_each = var.waf.body_inspection_limit == "KB_16" ? [] : [1]
    content {
      request_body {
        api_gateway {
          default_size_inspection_limit = var.waf.body_inspection_limit
        }
      }
    }
  }

  rule {
    name     = "rate-limit-per-ip"
    priority = 0

    action {
      block {}
    }

    statement {
      rate_based_statement {
        limit                 = var.waf.rate_limit
        evaluation_window_sec = var.waf.rate_limit_window_seconds
        aggregate_key_type    = "IP"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.api_name}-rate-limit-per-ip"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "body-size"
    priority = 1

    action {
      block {}
    }

    statement {
      or_statement {
        statement {
          regex_pattern_set_reference_statement {
            arn = aws_wafv2_regex_pattern_set.content_length_over_limit[0].arn
            field_to_match {
              single_header {
                name = "content-length"
              }
            }
            text_transformation {
              priority = 0
              type     = "NONE"
            }
          }
        }
        statement {
          size_constraint_statement {
            comparison_operator = "GT"
            size                = var.waf.max_body_bytes
            field_to_match {
              body {
                oversize_handling = "CONTINUE"
              }
            }
            text_transformation {
              priority = 0
              type     = "NONE"
            }
          }
        }
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.api_name}-body-size"
      sampled_requests_enabled   = true
    }
  }

  rule {
    name     = "aws-ip-reputation"
    priority = 2

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesAmazonIpReputationList"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.api_name}-aws-ip-reputation"
      sampled_requests_enabled   = true
    }
  }

  dynamic "rule" {
    for_each = var.waf.enable_anonymous_ip_list ? [1] : []
    content {
      name     = "aws-anonymous-ip"
      priority = 3

      override_action {
        none {}
      }

      statement {
        managed_rule_group_statement {
          vendor_name = "AWS"
          name        = "AWSManagedRulesAnonymousIpList"

          rule_action_override {
            name = "HostingProviderIPList"
            action_to_use {
              count {}
            }
          }
        }
      }

      visibility_config {
        cloudwatch_metrics_enabled = true
        metric_name                = "${local.api_name}-aws-anonymous-ip"
        sampled_requests_enabled   = true
      }
    }
  }

  rule {
    name     = "aws-common"
    priority = 4

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesCommonRuleSet"

        dynamic "rule_action_override" {
          for_each = toset(local.waf_common_count_rules)
          content {
            name = rule_action_override.value
            action_to_use {
              count {}
            }
          }
        }
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.api_name}-aws-common"
      sampled_requests_enabled   = true
    }
  }

  dynamic "rule" {
    for_each = local.waf_split_body_rules ? [1] : []
    content {
      name     = "aws-common-body-non-binary"
      priority = 5

      action {
        block {}
      }

      statement {
        and_statement {
          statement {
            or_statement {
              dynamic "statement" {
                for_each = local.waf_common_body_rules
                content {
                  label_match_statement {
                    scope = "LABEL"
                    key   = statement.value
                  }
                }
              }
            }
          }
          statement {
            not_statement {
              statement {
                regex_match_statement {
                  regex_string = local.waf_binary_content_type_regex
                  field_to_match {
                    single_header {
                      name = "content-type"
                    }
                  }
                  text_transformation {
                    priority = 0
                    type     = "LOWERCASE"
                  }
                }
              }
            }
          }
        }
      }

      visibility_config {
        cloudwatch_metrics_enabled = true
        metric_name                = "${local.api_name}-aws-common-body-non-binary"
        sampled_requests_enabled   = true
      }
    }
  }

  rule {
    name     = "aws-known-bad-inputs"
    priority = 6

    override_action {
      none {}
    }

    statement {
      managed_rule_group_statement {
        vendor_name = "AWS"
        name        = "AWSManagedRulesKnownBadInputsRuleSet"
      }
    }

    visibility_config {
      cloudwatch_metrics_enabled = true
      metric_name                = "${local.api_name}-aws-known-bad-inputs"
      sampled_requests_enabled   = true
    }
  }

  visibility_config {
    cloudwatch_metrics_enabled = true
    metric_name                = local.api_name
    sampled_requests_enabled   = true
  }

  tags = var.tags
}

resource "aws_wafv2_web_acl_association" "this" {
  count = var.enable_waf ? 1 : 0

  resource_arn = aws_api_gateway_stage.this.arn
  web_acl_arn  = aws_wafv2_web_acl.this[0].arn
}

resource "aws_cloudwatch_log_group" "waf" {
  count = local.waf_logging ? 1 : 0

  # WAF only delivers to log groups whose name starts with aws-waf-logs-.
  name              = "aws-waf-logs-${local.api_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_wafv2_web_acl_logging_configuration" "this" {
  count = local.waf_logging ? 1 : 0

  resource_arn            = aws_wafv2_web_acl.this[0].arn
  log_destination_configs = [aws_cloudwatch_log_group.waf[0].arn]

  redacted_fields {
    single_header {
      name = "x-api-key"
    }
  }
}
