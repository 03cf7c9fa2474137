//! The server's answers to a device's own RPC calls (client-side RPC:
//! `v1/devices/me/rpc/request/$id` over MQTT, `POST /api/v1/{token}/rpc` over HTTP), the
//! same whichever transport carried the call.

use serde_json::{Value, json};

/// What a device is told about its session's limits (`getSessionLimits`, which
/// ThingsBoard's SDKs ask for on connecting).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits<'a> {
    pub max_payload_size: u32,
    pub max_inflight_messages: u16,
    pub rate_limits: &'a crate::rate_limit::RateLimitSettings,
}

/// Answers a call `{"method": ..., "params": ...}`. `getSessionLimits` and
/// `getCurrentTime` are answered; other methods have no handler here and get an error
/// answer rather than silence. A body that is not such a call is refused with the reason.
pub fn answer(payload: &[u8], limits: SessionLimits<'_>) -> Result<Value, String> {
    let call = crate::payload::parse_json(payload)
        .map_err(|e| format!("the RPC call was refused: {e}"))?;
    let method = call
        .get("method")
        .and_then(Value::as_str)
        .ok_or("the RPC call has no \"method\" string")?;
    Ok(match method {
        "getSessionLimits" => json!({
            "maxPayloadSize": limits.max_payload_size,
            "maxInflightMessages": limits.max_inflight_messages,
            // ThingsBoard's notation; empty means none to the SDKs. The messages limit
            // covers telemetry messages too.
            "rateLimits": {
                "messages": limits.rate_limits.device_messages.to_string(),
                "telemetryMessages": "",
                "telemetryDataPoints": limits.rate_limits.device_telemetry_data_points.to_string(),
            },
        }),
        "getCurrentTime" => json!({ "time": crate::now_ms() }),
        other => json!({ "error": format!("no handler for the RPC method {other:?}") }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_RATE_LIMITS: &crate::rate_limit::RateLimitSettings =
        &crate::rate_limit::RateLimitSettings {
            device_messages: crate::rate_limit::RateLimitSpec::NONE,
            device_telemetry_data_points: crate::rate_limit::RateLimitSpec::NONE,
            tenant_messages: crate::rate_limit::RateLimitSpec::NONE,
        };
    const LIMITS: SessionLimits = SessionLimits {
        max_payload_size: 65536,
        max_inflight_messages: 64,
        rate_limits: NO_RATE_LIMITS,
    };

    #[test]
    fn known_methods_are_answered_and_others_told_so() {
        let limits = answer(br#"{"method":"getSessionLimits","params":{}}"#, LIMITS).unwrap();
        assert_eq!(limits["maxPayloadSize"], 65536);
        assert_eq!(limits["maxInflightMessages"], 64);
        assert!(limits["rateLimits"].is_object());
        assert!(
            answer(br#"{"method":"getCurrentTime"}"#, LIMITS).unwrap()["time"]
                .as_i64()
                .unwrap()
                > 0
        );
        let unknown = answer(br#"{"method":"reboot"}"#, LIMITS).unwrap();
        assert!(unknown["error"].as_str().unwrap().contains("reboot"));
    }

    #[test]
    fn lenient_calls_are_answered_as_thingsboard_answers_them() {
        let limits = answer(b"{method:getSessionLimits, params:{}}", LIMITS).unwrap();
        assert_eq!(limits["maxPayloadSize"], 65536);
        let unknown = answer(b"{'method':'reboot'}", LIMITS).unwrap();
        assert!(unknown["error"].as_str().unwrap().contains("reboot"));
    }

    #[test]
    fn malformed_calls_are_refused_with_the_reason() {
        assert!(answer(b"{", LIMITS).unwrap_err().contains("not valid JSON"));
        assert!(
            answer(br#"{"params":1}"#, LIMITS)
                .unwrap_err()
                .contains("method")
        );
        assert!(
            answer(br#"{"method":7}"#, LIMITS)
                .unwrap_err()
                .contains("method")
        );
    }
}
