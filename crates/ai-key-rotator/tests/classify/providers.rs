//! One row per documented or observed response in `provider-protocols.md`, by provider.

use ai_key_rotator::classify::Family::*;
use ai_key_rotator::classify::InvalidKeyCause::*;
use ai_key_rotator::classify::LimitKind::*;
use ai_key_rotator::classify::LimitScope::*;
use ai_key_rotator::classify::Verdict;

use super::*;

/// A limit counted per model.
fn per_model(name: &str) -> ai_key_rotator::classify::LimitScope {
    Model(ai_key_rotator::classify::ModelName::new(name).unwrap())
}

const OVERLOADED: Verdict = Verdict::Overloaded { retry_after: None };
const SERVER: Verdict = Verdict::ServerError { retry_after: None };

const OPENAI_TPM: &str = r#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-x on tokens per min (TPM): Limit 30000, Used 29000, Requested 1601. Please try again in 3.202s. Visit https://platform.openai.com/account/rate-limits to learn more.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#;
const OPENAI_RPD: &str = r#"{"error":{"message":"Rate limit reached for gpt-4o in organization org-x on requests per day (RPD): Limit 200, Used 200, Requested 1. Please try again in 7m12s. Visit https://platform.openai.com/account/rate-limits to learn more.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
const OPENAI_401: &str = r#"{"error":{"message":"Incorrect API key provided: sk-abc123. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","code":"invalid_api_key","param":null}}"#;

#[test]
fn openai() {
    let six = [
        ("x-ratelimit-limit-requests", "10000"),
        ("x-ratelimit-limit-tokens", "30000"),
        ("x-ratelimit-remaining-requests", "9999"),
        ("x-ratelimit-remaining-tokens", "29000"),
        ("x-ratelimit-reset-requests", "8.64s"),
        ("x-ratelimit-reset-tokens", "6m0s"),
    ];
    let quota_body = |code| -> &'static str {
        Box::leak(
            format!(r#"{{"error":{{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"{code}"}}}}"#)
                .into_boxed_str(),
        )
    };
    check_all(vec![
        (
            resp(OpenAi, 200, &six, "{}"),
            ok(Some(9999), Some(29000), Some(secs(8.64)), Some(secs(360.0))),
        ),
        (
            resp(
                OpenAi,
                200,
                &[
                    ("x-ratelimit-remaining-tokens", "0"),
                    ("x-ratelimit-reset-tokens", "20ms"),
                ],
                "",
            ),
            ok(None, Some(0), None, Some(ms(20))),
        ),
        // The wait in the message, when nothing else says.
        (
            resp(OpenAi, 429, &[], OPENAI_TPM),
            rate(Some(ms(3202)), per_model("gpt-4o"), TokensPerMinute),
        ),
        // The reset header for the limit that was hit beats the message.
        (
            resp(
                OpenAi,
                429,
                &[
                    ("x-ratelimit-remaining-tokens", "0"),
                    ("x-ratelimit-reset-tokens", "1s"),
                ],
                OPENAI_TPM,
            ),
            rate(Some(secs(1.0)), per_model("gpt-4o"), TokensPerMinute),
        ),
        // retry-after beats both.
        (
            resp(
                OpenAi,
                429,
                &[("retry-after", "20"), ("x-ratelimit-reset-tokens", "1s")],
                OPENAI_TPM,
            ),
            rate(Some(secs(20.0)), per_model("gpt-4o"), TokensPerMinute),
        ),
        (
            resp(OpenAi, 429, &[], OPENAI_RPD),
            rate(Some(secs(432.0)), per_model("gpt-4o"), RequestsPerDay),
        ),
        (
            resp(OpenAi, 429, &[], quota_body("insufficient_quota")),
            quota(None, Shared, Credits),
        ),
        (
            resp(OpenAi, 429, &[], quota_body("credit_balance_exhausted")),
            quota(None, Shared, Credits),
        ),
        (
            resp(
                OpenAi,
                429,
                &[],
                quota_body("organization_spend_limit_exceeded"),
            ),
            quota(None, Shared, Monthly),
        ),
        (
            resp(OpenAi, 429, &[], quota_body("project_spend_limit_exceeded")),
            quota(None, Shared, Monthly),
        ),
        (
            resp(
                OpenAi,
                429,
                &[],
                quota_body("organization_usage_limit_exceeded"),
            ),
            quota(None, Shared, Monthly),
        ),
        (
            resp(
                OpenAi,
                429,
                &[("retry-after", "5")],
                r#"{"error":{"message":"Please reduce your rate of requests.","type":"rate_limit_error","param":null,"code":"slow_down"}}"#,
            ),
            rate(Some(secs(5.0)), Shared, Unknown),
        ),
        (
            resp(
                OpenAi,
                503,
                &[],
                r#"{"error":{"message":"The server is overloaded or not ready yet.","type":"server_error","param":null,"code":"server_is_overloaded"}}"#,
            ),
            OVERLOADED,
        ),
        (
            resp(
                OpenAi,
                503,
                &[("retry-after", "2")],
                r#"{"error":{"message":"The server is overloaded or not ready yet.","type":"server_error","code":"server_is_overloaded"}}"#,
            ),
            Verdict::Overloaded {
                retry_after: Some(secs(2.0)),
            },
        ),
        (
            resp(
                OpenAi,
                500,
                &[],
                r#"{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}"#,
            ),
            SERVER,
        ),
        (resp(OpenAi, 502, &[], "<html>Bad gateway</html>"), SERVER),
        (resp(OpenAi, 504, &[], ""), SERVER),
        (resp(OpenAi, 401, &[], OPENAI_401), invalid(Invalid)),
        (
            resp(
                OpenAi,
                403,
                &[],
                r#"{"error":{"code":"unsupported_country_region_territory","message":"Country, region, or territory not supported","param":null,"type":"request_forbidden"}}"#,
            ),
            Verdict::RegionBlocked,
        ),
        (
            resp(
                OpenAi,
                403,
                &[],
                r#"{"error":{"message":"You are not allowed to sample from this model","type":"invalid_request_error","param":null,"code":null}}"#,
            ),
            invalid(PermissionDenied),
        ),
        (
            resp(
                OpenAi,
                400,
                &[],
                r#"{"error":{"message":"Invalid 'messages': empty array.","type":"invalid_request_error","param":"messages","code":"empty_array"}}"#,
            ),
            Verdict::ClientError,
        ),
    ]);
}

#[test]
fn azure_openai() {
    const AZURE_429: &str = r#"{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 6 seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit."}}"#;
    check_all(vec![
        (
            resp(AzureOpenAi, 429, &[], AZURE_429),
            rate(Some(secs(6.0)), Shared, TokensPerMinute),
        ),
        (
            resp(
                AzureOpenAi,
                429,
                &[("retry-after", "6"), ("retry-after-ms", "1500")],
                AZURE_429,
            ),
            rate(Some(ms(1500)), Shared, TokensPerMinute),
        ),
        (
            resp(AzureOpenAi, 429, &[("retry-after", "6")], AZURE_429),
            rate(Some(secs(6.0)), Shared, TokensPerMinute),
        ),
        (
            resp(
                AzureOpenAi,
                401,
                &[],
                r#"{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint. Make sure to provide a valid key for an active subscription and use a correct regional API endpoint for your resource."}}"#,
            ),
            invalid(Invalid),
        ),
        // The Responses API sends -1 with no retry-after: not a count, ignored.
        (
            resp(
                AzureOpenAi,
                200,
                &[
                    ("x-ratelimit-remaining-requests", "-1"),
                    ("x-ratelimit-remaining-tokens", "-1"),
                ],
                "",
            ),
            OK_EMPTY,
        ),
        (
            resp(
                AzureOpenAi,
                200,
                &[
                    ("x-ratelimit-remaining-requests", "0"),
                    ("x-ratelimit-remaining-tokens", "0"),
                ],
                "",
            ),
            ok(Some(0), Some(0), None, None),
        ),
    ]);
}

#[test]
fn anthropic() {
    const RATE_429: &str = r#"{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed the rate limit for your organization (org-1) of 50,000 input tokens per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits."},"request_id":"req_011"}"#;
    const CAP: &str = r#"{"type":"error","error":{"type":"rate_limit_error","message":"You have reached your API usage limits: your organization's monthly spend limit. You will regain access on 2026-09-01 at 00:00 UTC.","details":{"error_code":"enforced_spend_limit_reached"}},"request_id":"req_012"}"#;
    const CAP_EARLY: &str = r#"{"type":"error","error":{"type":"rate_limit_error","message":"You have reached your API usage limits. You will regain access on 2026-08-20 at 06:30 UTC.","details":{"error_code":"enforced_spend_limit_reached"}}}"#;
    const CAP_NO_DATE: &str = r#"{"type":"error","error":{"type":"rate_limit_error","message":"You have reached your API usage limits.","details":{"error_code":"enforced_spend_limit_reached"}}}"#;
    let headers = [
        ("anthropic-ratelimit-requests-limit", "50"),
        ("anthropic-ratelimit-requests-remaining", "49"),
        ("anthropic-ratelimit-requests-reset", "2026-08-15T12:00:30Z"),
        ("anthropic-ratelimit-input-tokens-limit", "50000"),
        ("anthropic-ratelimit-input-tokens-remaining", "0"),
        (
            "anthropic-ratelimit-input-tokens-reset",
            "2026-08-15T12:00:59Z",
        ),
        ("anthropic-ratelimit-output-tokens-limit", "10000"),
        ("anthropic-ratelimit-output-tokens-remaining", "8000"),
        (
            "anthropic-ratelimit-output-tokens-reset",
            "2026-08-15T12:00:10Z",
        ),
    ];
    let err = |status, kind: &str, message: &str| -> Input {
        let body = format!(
            r#"{{"type":"error","error":{{"type":"{kind}","message":"{message}"}},"request_id":"req_1"}}"#
        );
        resp(Anthropic, status, &[], Box::leak(body.into_boxed_str()))
    };
    check_all(vec![
        (
            resp(Anthropic, 200, &headers, "{}"),
            ok(Some(49), Some(0), Some(secs(30.0)), Some(secs(59.0))),
        ),
        (
            resp(
                Anthropic,
                200,
                &[
                    ("anthropic-ratelimit-tokens-remaining", "1000"),
                    (
                        "anthropic-ratelimit-tokens-reset",
                        "2026-08-15T12:01:00.5+00:00",
                    ),
                ],
                "",
            ),
            ok(None, Some(1000), None, Some(ms(60_500))),
        ),
        // A reset time stands on its own, without the matching `-remaining` header.
        (
            resp(
                Anthropic,
                200,
                &[("anthropic-ratelimit-tokens-reset", "2026-08-15T12:00:40Z")],
                "",
            ),
            ok(None, None, None, Some(secs(40.0))),
        ),
        (
            resp(
                Anthropic,
                200,
                &[("anthropic-ratelimit-requests-reset", "2026-08-15T12:00:30Z")],
                "",
            ),
            ok(None, None, Some(secs(30.0)), None),
        ),
        (
            resp(
                Anthropic,
                429,
                &[(
                    "anthropic-ratelimit-input-tokens-reset",
                    "2026-08-15T12:00:45Z",
                )],
                RATE_429,
            ),
            rate(Some(secs(45.0)), Shared, TokensPerMinute),
        ),
        // Of two resets with no counts, the later one: either limit may be the spent one.
        (
            resp(
                Anthropic,
                429,
                &[
                    (
                        "anthropic-ratelimit-input-tokens-reset",
                        "2026-08-15T12:00:45Z",
                    ),
                    (
                        "anthropic-ratelimit-output-tokens-reset",
                        "2026-08-15T12:00:50Z",
                    ),
                ],
                RATE_429,
            ),
            rate(Some(secs(50.0)), Shared, TokensPerMinute),
        ),
        // A limit known to be spent beats a later reset of one whose count is unknown.
        (
            resp(
                Anthropic,
                429,
                &[
                    ("anthropic-ratelimit-input-tokens-remaining", "0"),
                    (
                        "anthropic-ratelimit-input-tokens-reset",
                        "2026-08-15T12:00:20Z",
                    ),
                    (
                        "anthropic-ratelimit-output-tokens-reset",
                        "2026-08-15T12:00:50Z",
                    ),
                ],
                RATE_429,
            ),
            rate(Some(secs(20.0)), Shared, TokensPerMinute),
        ),
        (
            resp(Anthropic, 429, &[("retry-after", "20")], RATE_429),
            rate(Some(secs(20.0)), Shared, TokensPerMinute),
        ),
        // No retry-after: the reset of the spent token limit.
        (
            resp(Anthropic, 429, &headers, RATE_429),
            rate(Some(secs(59.0)), Shared, TokensPerMinute),
        ),
        (
            resp(Anthropic, 429, &[], RATE_429),
            rate(None, Shared, TokensPerMinute),
        ),
        (
            resp(Anthropic, 429, &[], CAP),
            quota(Some(utc(2026, 9, 1, 0, 0, 0)), Shared, Monthly),
        ),
        (
            resp(Anthropic, 429, &[], CAP_EARLY),
            quota(Some(utc(2026, 8, 20, 6, 30, 0)), Shared, Monthly),
        ),
        (
            resp(Anthropic, 429, &[], CAP_NO_DATE),
            quota(Some(utc(2026, 9, 1, 0, 0, 0)), Shared, Monthly),
        ),
        (
            resp(
                Anthropic,
                400,
                &[],
                r#"{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."}}"#,
            ),
            quota(None, Shared, Credits),
        ),
        (
            err(
                400,
                "invalid_request_error",
                "messages: at least one message is required",
            ),
            Verdict::ClientError,
        ),
        (
            resp(
                Anthropic,
                401,
                &[],
                r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#,
            ),
            invalid(Invalid),
        ),
        (
            err(402, "billing_error", "Your account has a billing problem."),
            quota(None, Shared, Credits),
        ),
        (
            err(
                403,
                "permission_error",
                "Your API key does not have permission to use the specified resource.",
            ),
            invalid(PermissionDenied),
        ),
        (
            err(
                413,
                "request_too_large",
                "Request exceeds the maximum allowed number of bytes.",
            ),
            Verdict::ClientError,
        ),
        (err(500, "api_error", "Internal server error"), SERVER),
        (
            resp(
                Anthropic,
                529,
                &[],
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ),
            OVERLOADED,
        ),
        (
            resp(
                Anthropic,
                529,
                &[("retry-after", "3")],
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ),
            Verdict::Overloaded {
                retry_after: Some(secs(3.0)),
            },
        ),
    ]);
}

const GEMINI_DAY: &str = r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details. For more information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits. Please retry in 38.922534355s.","status":"RESOURCE_EXHAUSTED","details":[
 {"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier","quotaDimensions":{"location":"global","model":"gemini-2.0-flash"},"quotaValue":"250"}]},
 {"@type":"type.googleapis.com/google.rpc.Help","links":[{"description":"Learn more about Gemini API quotas","url":"https://ai.google.dev/gemini-api/docs/rate-limits"}]},
 {"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"47s"}]}}"#;

#[test]
fn gemini() {
    const MINUTE: &str = r#"{"error":{"code":429,"message":"You exceeded your current quota. Please retry in 38.922534355s.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaMetric":"generativelanguage.googleapis.com/generate_content_free_tier_requests","quotaId":"GenerateRequestsPerMinutePerProjectPerModel-FreeTier","quotaValue":"15"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"45.837906927s"}]}}"#;
    const TOKENS_TEXT_ONLY: &str = r#"{"error":{"code":429,"message":"You exceeded your current quota. Please retry in 38.922534355s.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateContentInputTokensPerModelPerMinute-FreeTier"}]}]}}"#;
    const MINUTE_NO_WAIT: &str = r#"{"error":{"code":429,"message":"You exceeded your current quota.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateRequestsPerMinutePerProjectPerModel"}]}]}}"#;
    const PAID_DAY: &str = r#"{"error":{"code":429,"message":"You exceeded your current quota.","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateRequestsPerDayPerProjectPerModel"}]},{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"12s"}]}}"#;
    const LIMIT_ZERO: &str = r#"{"error":{"code":429,"message":"You exceeded your current quota, please check your plan and billing details. * Quota exceeded for metric: generativelanguage.googleapis.com/generate_content_free_tier_requests, limit: 0, model: gemini-2.5-pro","status":"RESOURCE_EXHAUSTED","details":[{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{"quotaId":"GenerateRequestsPerDayPerProjectPerModel-FreeTier"}]}]}}"#;
    const OLD: &str = r#"{"error":{"code":429,"message":"Resource has been exhausted (e.g. check quota).","status":"RESOURCE_EXHAUSTED"}}"#;
    const BAD_KEY: &str = r#"{"error":{"code":400,"message":"API key not valid. Please pass a valid API key.","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_INVALID","domain":"googleapis.com","metadata":{"service":"generativelanguage.googleapis.com"}}]}}"#;
    const SUSPENDED: &str = r#"{"error":{"code":403,"message":"Permission denied: Consumer 'api_key:AIza...' has been suspended.","status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"CONSUMER_SUSPENDED","domain":"googleapis.com"}]}}"#;
    const LEAKED: &str = r#"{"error":{"code":403,"message":"Your API key was reported as leaked. Please use another API key.","status":"PERMISSION_DENIED"}}"#;
    const BLOCKED: &str = r#"{"error":{"code":403,"message":"Requests to this API generativelanguage.googleapis.com method google.ai.generativelanguage.v1beta.GenerativeService.GenerateContent are blocked.","status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"API_KEY_SERVICE_BLOCKED","domain":"googleapis.com"}]}}"#;
    let pacific_midnight = utc(2026, 8, 16, 7, 0, 0);
    check_all(vec![
        // A spent daily quota lifts at midnight Pacific, not after RetryInfo's 47 s.
        (
            resp(Gemini, 429, &[], GEMINI_DAY),
            quota(
                Some(pacific_midnight),
                per_model("gemini-2.0-flash"),
                RequestsPerDay,
            ),
        ),
        (
            resp(Gemini, 429, &[], PAID_DAY),
            quota(Some(pacific_midnight), Shared, RequestsPerDay),
        ),
        // Daylight saving: a 23-hour day in March, a 25-hour day in November.
        (
            resp(Gemini, 429, &[], GEMINI_DAY).at(utc(2026, 3, 8, 8, 30, 0)),
            quota(
                Some(utc(2026, 3, 9, 7, 0, 0)),
                per_model("gemini-2.0-flash"),
                RequestsPerDay,
            ),
        ),
        (
            resp(Gemini, 429, &[], GEMINI_DAY).at(utc(2026, 3, 8, 7, 30, 0)),
            quota(
                Some(utc(2026, 3, 8, 8, 0, 0)),
                per_model("gemini-2.0-flash"),
                RequestsPerDay,
            ),
        ),
        (
            resp(Gemini, 429, &[], GEMINI_DAY).at(utc(2026, 11, 1, 7, 30, 0)),
            quota(
                Some(utc(2026, 11, 2, 8, 0, 0)),
                per_model("gemini-2.0-flash"),
                RequestsPerDay,
            ),
        ),
        // Per-minute: RetryInfo beats the message.
        (
            resp(Gemini, 429, &[], MINUTE),
            rate(Some(ms(45_838)), Shared, RequestsPerMinute),
        ),
        (
            resp(Gemini, 429, &[], TOKENS_TEXT_ONLY),
            rate(Some(ms(38_923)), Shared, TokensPerMinute),
        ),
        (
            resp(Gemini, 429, &[], MINUTE_NO_WAIT),
            rate(Some(secs(60.0)), Shared, RequestsPerMinute),
        ),
        (
            resp(Gemini, 429, &[], LIMIT_ZERO),
            quota(None, Shared, RequestsPerDay),
        ),
        (resp(Gemini, 429, &[], OLD), rate(None, Shared, Unknown)),
        (resp(Gemini, 400, &[], BAD_KEY), invalid(Invalid)),
        (
            resp(
                Gemini,
                400,
                &[],
                r#"{"error":{"code":400,"message":"User location is not supported for the API use.","status":"FAILED_PRECONDITION"}}"#,
            ),
            Verdict::RegionBlocked,
        ),
        (
            resp(
                Gemini,
                400,
                &[],
                r#"{"error":{"code":400,"message":"Invalid JSON payload received.","status":"INVALID_ARGUMENT"}}"#,
            ),
            Verdict::ClientError,
        ),
        (resp(Gemini, 403, &[], SUSPENDED), invalid(Suspended)),
        (resp(Gemini, 403, &[], LEAKED), invalid(Leaked)),
        (resp(Gemini, 403, &[], BLOCKED), invalid(Blocked)),
        (
            resp(
                Gemini,
                403,
                &[],
                r#"{"error":{"code":403,"message":"Method doesn't allow unregistered callers.","status":"PERMISSION_DENIED"}}"#,
            ),
            invalid(PermissionDenied),
        ),
        (
            resp(
                Gemini,
                500,
                &[],
                r#"{"error":{"code":500,"message":"An internal error has occurred.","status":"INTERNAL"}}"#,
            ),
            SERVER,
        ),
        (
            resp(
                Gemini,
                503,
                &[],
                r#"{"error":{"code":503,"message":"The model is overloaded. Please try again later.","status":"UNAVAILABLE"}}"#,
            ),
            OVERLOADED,
        ),
        (
            resp(
                Gemini,
                504,
                &[],
                r#"{"error":{"code":504,"message":"Deadline expired before operation could complete.","status":"DEADLINE_EXCEEDED"}}"#,
            ),
            SERVER,
        ),
        (resp(Gemini, 200, &[], "{}"), OK_EMPTY),
    ]);
}

#[test]
fn groq() {
    const TPM: &str = r#"{"error":{"message":"Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_01` service tier `on_demand` on tokens per minute (TPM): Limit 15000, Used 11972, Requested 4351. Please try again in 5.289s. Need more tokens? Upgrade to Dev Tier today at https://console.groq.com/settings/billing","type":"tokens","code":"rate_limit_exceeded"}}"#;
    const TPD: &str = r#"{"error":{"message":"Rate limit reached for model `llama-3.3-70b-versatile` in organization `org_01` service tier `on_demand` on tokens per day (TPD): Limit 100000, Used 99000, Requested 1500. Please try again in 11m0.528s. Need more tokens?","type":"tokens","code":"rate_limit_exceeded"}}"#;
    check_all(vec![
        (
            resp(
                Groq,
                200,
                &[
                    ("x-ratelimit-limit-requests", "14400"),
                    ("x-ratelimit-limit-tokens", "18000"),
                    ("x-ratelimit-remaining-requests", "14370"),
                    ("x-ratelimit-remaining-tokens", "17997"),
                    ("x-ratelimit-reset-requests", "2m59.56s"),
                    ("x-ratelimit-reset-tokens", "7.66s"),
                ],
                "{}",
            ),
            ok(Some(14370), Some(17997), Some(ms(179_560)), Some(ms(7_660))),
        ),
        (
            resp(
                Groq,
                401,
                &[],
                r#"{"error":{"message":"Invalid API Key","type":"invalid_request_error","code":"invalid_api_key"}}"#,
            ),
            invalid(Invalid),
        ),
        (
            resp(Groq, 429, &[], TPM),
            rate(
                Some(ms(5_289)),
                per_model("llama-3.3-70b-versatile"),
                TokensPerMinute,
            ),
        ),
        (
            resp(Groq, 429, &[("retry-after", "6")], TPM),
            rate(
                Some(secs(6.0)),
                per_model("llama-3.3-70b-versatile"),
                TokensPerMinute,
            ),
        ),
        (
            resp(Groq, 429, &[], TPD),
            rate(
                Some(ms(660_528)),
                per_model("llama-3.3-70b-versatile"),
                TokensPerDay,
            ),
        ),
        (
            resp(
                Groq,
                498,
                &[],
                r#"{"error":{"message":"Flex tier capacity exceeded. This is a known issue.","type":"capacity_exceeded","code":"capacity_exceeded"}}"#,
            ),
            OVERLOADED,
        ),
        (
            resp(
                Groq,
                503,
                &[],
                r#"{"error":{"message":"Service Unavailable","type":"internal_server_error"}}"#,
            ),
            OVERLOADED,
        ),
    ]);
}

#[test]
fn mistral() {
    check_all(vec![
        (
            resp(
                Mistral,
                429,
                &[("Retry-After", "1")],
                r#"{"message":"Requests rate limit exceeded"}"#,
            ),
            rate(Some(secs(1.0)), Shared, Unknown),
        ),
        (
            resp(
                Mistral,
                429,
                &[],
                r#"{"object":"error","message":"Requests rate limit exceeded","type":"rate_limited","param":null,"code":"1300"}"#,
            ),
            rate(None, Shared, Unknown),
        ),
        (
            resp(
                Mistral,
                401,
                &[],
                r#"{"message":"Unauthorized","request_id":"f1d5a6"}"#,
            ),
            invalid(Invalid),
        ),
        (
            resp(
                Mistral,
                402,
                &[],
                r#"{"object":"error","message":"You have reached your spending limit.","type":"invalid_request_error","param":null,"code":"3505"}"#,
            ),
            quota(None, Shared, Credits),
        ),
        (
            resp(
                Mistral,
                400,
                &[],
                r#"{"object":"error","message":"Invalid model: foo","type":"invalid_request_error","param":null,"code":"1500"}"#,
            ),
            Verdict::ClientError,
        ),
        (
            resp(
                Mistral,
                500,
                &[],
                r#"{"object":"error","message":"Internal","type":"server_error"}"#,
            ),
            SERVER,
        ),
    ]);
}

#[test]
fn cohere() {
    let next_month = Some(utc(2026, 9, 1, 0, 0, 0));
    check_all(vec![
        (
            resp(Cohere, 401, &[], r#"{"message":"invalid api token"}"#),
            invalid(Invalid),
        ),
        (
            resp(
                Cohere,
                402,
                &[],
                r#"{"message":"Please add or update your payment method to continue. You have reached your billing limit."}"#,
            ),
            quota(next_month, Shared, Monthly),
        ),
        (
            resp(
                Cohere,
                429,
                &[],
                r#"{"message":"You are past the per minute request limit, please wait and try again later."}"#,
            ),
            rate(Some(secs(60.0)), Key, RequestsPerMinute),
        ),
        (
            resp(
                Cohere,
                429,
                &[],
                r#"{"message":"You are using a Trial key, which is limited to 40 API calls / minute. You can continue to use the Trial key for free or upgrade to a Production key."}"#,
            ),
            rate(Some(secs(60.0)), Key, RequestsPerMinute),
        ),
        (
            resp(
                Cohere,
                429,
                &[],
                r#"{"message":"You are using a Trial key, which is limited to 1,000 calls / month. You can continue to use the Trial key for free or upgrade to a Production key."}"#,
            ),
            quota(next_month, Key, Monthly),
        ),
        (
            resp(Cohere, 500, &[], r#"{"message":"internal server error"}"#),
            SERVER,
        ),
    ]);
}

#[test]
fn openrouter() {
    const RL: &str = r#"{"error":{"code":429,"message":"Rate limit exceeded","metadata":{"error_type":"rate_limit_exceeded"}}}"#;
    const FREE_DAY: &str = r#"{"error":{"message":"Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model requests per day","code":429,"metadata":{"headers":{"X-RateLimit-Limit":"50","X-RateLimit-Remaining":"0","X-RateLimit-Reset":"1786838400000"}}}}"#;
    const UPSTREAM: &str = r#"{"error":{"message":"Provider returned error","code":429,"metadata":{"raw":"google/gemini-2.0-flash-exp:free is temporarily rate-limited upstream.","provider_name":"Google AI Studio","provider_code":429}}}"#;
    let reset_in_30s = "1786795230000";
    check_all(vec![
        (
            resp(
                OpenRouter,
                429,
                &[
                    ("X-RateLimit-Limit", "20"),
                    ("X-RateLimit-Remaining", "0"),
                    ("X-RateLimit-Reset", reset_in_30s),
                ],
                RL,
            ),
            rate(Some(secs(30.0)), Shared, Unknown),
        ),
        (
            resp(OpenRouter, 429, &[("Retry-After", "10")], UPSTREAM),
            Verdict::Overloaded {
                retry_after: Some(secs(10.0)),
            },
        ),
        (
            resp(OpenRouter, 429, &[], FREE_DAY),
            quota(Some(utc(2026, 8, 16, 0, 0, 0)), Shared, RequestsPerDay),
        ),
        (
            resp(
                OpenRouter,
                429,
                &[("X-RateLimit-Reset", "1786838400000")],
                FREE_DAY,
            ),
            quota(Some(utc(2026, 8, 16, 0, 0, 0)), Shared, RequestsPerDay),
        ),
        (
            resp(
                OpenRouter,
                402,
                &[],
                r#"{"error":{"code":402,"message":"Insufficient credits","metadata":{"limit_source":"openrouter_credits"}}}"#,
            ),
            quota(None, Shared, Credits),
        ),
        (
            resp(
                OpenRouter,
                402,
                &[],
                r#"{"error":{"code":402,"message":"Key limit exceeded","metadata":{"limit_source":"openrouter_key_limit"}}}"#,
            ),
            quota(None, Key, Credits),
        ),
        (
            resp(
                OpenRouter,
                402,
                &[("Retry-After", "3")],
                r#"{"error":{"code":402,"message":"In-flight budget exceeded","metadata":{"limit_source":"openrouter_in_flight_budget"}}}"#,
            ),
            rate(Some(secs(3.0)), Shared, InFlight),
        ),
        (
            resp(
                OpenRouter,
                402,
                &[],
                r#"{"error":{"code":402,"message":"Payment required"}}"#,
            ),
            quota(None, Shared, Credits),
        ),
        (
            resp(
                OpenRouter,
                401,
                &[],
                r#"{"error":{"code":401,"message":"No auth credentials found"}}"#,
            ),
            invalid(Invalid),
        ),
        (
            resp(
                OpenRouter,
                403,
                &[],
                r#"{"error":{"code":403,"message":"Your chosen model requires moderation and your input was flagged","metadata":{"reasons":["harassment"]}}}"#,
            ),
            Verdict::ClientError,
        ),
        (
            resp(
                OpenRouter,
                502,
                &[],
                r#"{"error":{"code":502,"message":"Provider returned error"}}"#,
            ),
            SERVER,
        ),
        (
            resp(
                OpenRouter,
                200,
                &[
                    ("X-RateLimit-Remaining", "19"),
                    ("X-RateLimit-Reset", reset_in_30s),
                ],
                "{}",
            ),
            ok(Some(19), None, Some(secs(30.0)), None),
        ),
    ]);
}

#[test]
fn deepseek() {
    check_all(vec![
        (
            resp(
                DeepSeek,
                401,
                &[],
                r#"{"error":{"message":"Authentication Fails, Your api key: ****abcd is invalid","type":"authentication_error","param":null,"code":"invalid_request_error"}}"#,
            ),
            invalid(Invalid),
        ),
        (
            resp(
                DeepSeek,
                402,
                &[],
                r#"{"error":{"message":"Insufficient Balance","type":"unknown_error","param":null,"code":"invalid_request_error"}}"#,
            ),
            quota(None, Shared, Credits),
        ),
        (
            resp(
                DeepSeek,
                429,
                &[],
                r#"{"error":{"message":"Rate Limit Reached","type":"rate_limit_reached_error"}}"#,
            ),
            rate(None, Key, Unknown),
        ),
        (
            resp(
                DeepSeek,
                503,
                &[],
                r#"{"error":{"message":"Server overloaded, please try again later","type":"server_overloaded"}}"#,
            ),
            OVERLOADED,
        ),
        (resp(DeepSeek, 200, &[], ": keep-alive\n\n"), OK_EMPTY),
    ]);
}

#[test]
fn xai() {
    check_all(vec![
        (
            resp(
                Xai,
                400,
                &[],
                r#"{"code":"Client specified an invalid argument","error":"Incorrect API key provided: xa***bc. You can obtain an API key from https://console.x.ai."}"#,
            ),
            invalid(Invalid),
        ),
        (
            resp(
                Xai,
                400,
                &[],
                r#"{"code":"Client specified an invalid argument","error":"Invalid request content."}"#,
            ),
            Verdict::ClientError,
        ),
        (
            resp(
                Xai,
                401,
                &[],
                r#"{"error":"Missing or invalid authorization token"}"#,
            ),
            invalid(Invalid),
        ),
        (
            resp(Xai, 403, &[], r#"{"error":"The API key is blocked"}"#),
            invalid(Blocked),
        ),
        (
            resp(
                Xai,
                429,
                &[],
                r#"{"code":"Some resource has been exhausted","error":"Your team 0e1b has either used all available credits or reached its monthly spending limit. To continue making API requests, please purchase more credits or raise your spending limit."}"#,
            ),
            quota(None, Shared, Credits),
        ),
        (
            resp(
                Xai,
                429,
                &[("retry-after", "4")],
                r#"{"error":"Too many requests"}"#,
            ),
            rate(Some(secs(4.0)), Shared, Unknown),
        ),
    ]);
}

#[test]
fn together() {
    check_all(vec![
        (
            resp(
                Together,
                200,
                &[
                    ("x-ratelimit-limit", "10"),
                    ("x-ratelimit-remaining", "9"),
                    ("x-ratelimit-reset", "1"),
                    ("x-tokenlimit-limit", "20000"),
                    ("x-tokenlimit-remaining", "5000"),
                ],
                "{}",
            ),
            ok(Some(9), Some(5000), Some(secs(1.0)), Some(secs(1.0))),
        ),
        (
            resp(
                Together,
                401,
                &[],
                r#"{"error":{"message":"Invalid API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#,
            ),
            invalid(Invalid),
        ),
        (
            resp(
                Together,
                402,
                &[],
                r#"{"error":{"message":"Monthly spending limit reached","type":"invalid_request_error"}}"#,
            ),
            quota(Some(utc(2026, 9, 1, 0, 0, 0)), Shared, Monthly),
        ),
        (
            resp(
                Together,
                429,
                &[("x-ratelimit-reset", "2")],
                r#"{"error":{"message":"You are sending requests too fast","type":"rate_limit","error_type":"dynamic_request_limited"}}"#,
            ),
            rate(Some(secs(2.0)), Shared, RequestsPerMinute),
        ),
        (
            resp(
                Together,
                429,
                &[],
                r#"{"message":"Token rate limit exceeded","error_type":"dynamic_token_limited"}"#,
            ),
            rate(None, Shared, TokensPerMinute),
        ),
        (
            resp(
                Together,
                503,
                &[],
                r#"{"error":{"message":"Service overloaded"}}"#,
            ),
            OVERLOADED,
        ),
    ]);
}

#[test]
fn fireworks() {
    check_all(vec![
        (
            resp(
                Fireworks,
                200,
                &[
                    ("x-ratelimit-limit-tokens-prompt", "60000"),
                    ("x-ratelimit-limit-tokens-generated", "12000"),
                    ("x-ratelimit-remaining-tokens-prompt", "59000"),
                    ("x-ratelimit-remaining-tokens-generated", "11000"),
                    ("x-ratelimit-over-limit", "no"),
                ],
                "{}",
            ),
            ok(None, Some(11000), None, None),
        ),
        (
            resp(
                Fireworks,
                401,
                &[],
                r#"{"error":{"object":"error","type":"invalid_request_error","message":"The API key you provided is invalid."}}"#,
            ),
            invalid(Invalid),
        ),
        (
            resp(
                Fireworks,
                402,
                &[],
                r#"{"error":{"message":"Account is out of credits"}}"#,
            ),
            quota(None, Shared, Credits),
        ),
        (
            resp(Fireworks, 403, &[], r#"{"error":{"message":"Forbidden"}}"#),
            invalid(PermissionDenied),
        ),
        (
            resp(
                Fireworks,
                412,
                &[],
                r#"{"error":{"message":"Account suspended"}}"#,
            ),
            invalid(Suspended),
        ),
        (
            resp(
                Fireworks,
                429,
                &[("retry-after", "1")],
                r#"{"error":{"message":"Request was rate limited"}}"#,
            ),
            rate(Some(secs(1.0)), Shared, Unknown),
        ),
        (resp(Fireworks, 503, &[], ""), OVERLOADED),
    ]);
}

#[test]
fn unknown_family_and_bodies_fall_back_by_status() {
    let c = OpenAiCompatible;
    check_all(vec![
        (resp(c, 401, &[], "nope"), invalid(Invalid)),
        (resp(c, 403, &[], ""), invalid(PermissionDenied)),
        (resp(c, 402, &[], "<html>"), quota(None, Shared, Credits)),
        (
            resp(c, 429, &[("retry-after", "7")], "slow down"),
            rate(Some(secs(7.0)), Key, Unknown),
        ),
        (resp(c, 429, &[], ""), rate(None, Key, Unknown)),
        (resp(c, 500, &[], "\u{0}\u{1}"), SERVER),
        (
            resp(c, 502, &[("retry-after", "1")], "<html>Bad Gateway</html>"),
            Verdict::ServerError {
                retry_after: Some(secs(1.0)),
            },
        ),
        (resp(c, 503, &[], ""), OVERLOADED),
        (
            resp(c, 404, &[], r#"{"error":{"message":"model not found"}}"#),
            Verdict::ClientError,
        ),
        (resp(c, 418, &[], ""), Verdict::ClientError),
        (resp(c, 301, &[], ""), Verdict::ClientError),
        (resp(c, 0, &[], ""), SERVER),
        (resp(c, 700, &[], ""), SERVER),
        (
            resp(
                c,
                204,
                &[
                    ("x-ratelimit-remaining-requests", "5"),
                    ("x-ratelimit-reset-requests", "1s"),
                ],
                "",
            ),
            ok(Some(5), None, Some(secs(1.0)), None),
        ),
        // Any family, an unexpected JSON shape: the status decides.
        (
            resp(
                OpenAi,
                429,
                &[],
                r#"{"error":[1,2,3],"message":{"nested":true}}"#,
            ),
            rate(None, Shared, Unknown),
        ),
        (resp(Anthropic, 401, &[], "[]"), invalid(Invalid)),
        (
            resp(
                Gemini,
                429,
                &[],
                r#"{"error":{"code":"x","details":[42,"s",null,{"violations":7}]}}"#,
            ),
            rate(None, Shared, Unknown),
        ),
    ]);
}
