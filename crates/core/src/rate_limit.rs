//! Rate limits on what devices send, in ThingsBoard's notation: windows of
//! `capacity:seconds`, comma-separated (`"200:1,6000:60"`: at most 200 in any second and
//! 6,000 in any minute); empty means none. Limits apply per device (messages, telemetry
//! data points) and per tenant (messages of all its devices), across MQTT and HTTP, and
//! are what `getSessionLimits` reports.

use std::fmt;
use std::hash::Hash;
use std::num::NonZeroU32;
use std::str::FromStr;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::{Device, DeviceId, TenantId};

/// Parsed `capacity:seconds` windows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RateLimitSpec(Vec<(NonZeroU32, NonZeroU32)>);

impl FromStr for RateLimitSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut windows = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let bad = || {
                format!(
                    "{part:?} is not capacity:seconds with two whole numbers above 0 (e.g. \"200:1,6000:60\")"
                )
            };
            let (capacity, seconds) = part.split_once(':').ok_or_else(bad)?;
            let capacity: NonZeroU32 = capacity.trim().parse().map_err(|_| bad())?;
            let seconds: NonZeroU32 = seconds.trim().parse().map_err(|_| bad())?;
            windows.push((capacity, seconds));
        }
        Ok(RateLimitSpec(windows))
    }
}

impl fmt::Display for RateLimitSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(c, s)| format!("{c}:{s}")).collect();
        f.write_str(&parts.join(","))
    }
}

impl RateLimitSpec {
    /// No limit.
    pub const NONE: RateLimitSpec = RateLimitSpec(Vec::new());

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// One keyed token bucket per window; a request passes when every window has room.
struct Windows<K: Hash + Eq + Clone>(Vec<DefaultKeyedRateLimiter<K>>);

impl<K: Hash + Eq + Clone> Windows<K> {
    fn new(spec: &RateLimitSpec) -> Self {
        Windows(
            spec.0
                .iter()
                .map(|(capacity, seconds)| {
                    let period = Duration::from_secs(u64::from(seconds.get())) / capacity.get();
                    let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
                        .expect("a positive period")
                        .allow_burst(*capacity);
                    RateLimiter::keyed(quota)
                })
                .collect(),
        )
    }

    fn admit(&self, key: &K, n: u32) -> bool {
        let Some(n) = NonZeroU32::new(n) else {
            return true;
        };
        self.0
            .iter()
            .all(|w| matches!(w.check_key_n(key, n), Ok(Ok(()))))
    }

    fn forget_idle(&self) {
        for w in &self.0 {
            w.retain_recent();
        }
    }
}

/// Which limit a device went over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exceeded {
    DeviceMessages,
    DeviceTelemetryDataPoints,
    TenantMessages,
}

impl fmt::Display for Exceeded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Exceeded::DeviceMessages => "the device sends more messages than its rate limit allows",
            Exceeded::DeviceTelemetryDataPoints => {
                "the device sends more telemetry data points than its rate limit allows"
            }
            Exceeded::TenantMessages => {
                "the tenant's devices send more messages than its rate limit allows"
            }
        })
    }
}

/// The configured limits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RateLimitSettings {
    pub device_messages: RateLimitSpec,
    pub device_telemetry_data_points: RateLimitSpec,
    pub tenant_messages: RateLimitSpec,
}

/// The limits in force, shared by every transport.
pub struct DeviceRateLimits {
    settings: RateLimitSettings,
    device_messages: Windows<DeviceId>,
    device_points: Windows<DeviceId>,
    tenant_messages: Windows<TenantId>,
    checks: std::sync::atomic::AtomicU64,
}

impl fmt::Debug for DeviceRateLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DeviceRateLimits")
            .field(&self.settings)
            .finish()
    }
}

/// Admissions between two clean-ups of idle devices' buckets.
const FORGET_EVERY: u64 = 1 << 20;

impl DeviceRateLimits {
    pub fn new(settings: RateLimitSettings) -> Self {
        DeviceRateLimits {
            device_messages: Windows::new(&settings.device_messages),
            device_points: Windows::new(&settings.device_telemetry_data_points),
            tenant_messages: Windows::new(&settings.tenant_messages),
            settings,
            checks: Default::default(),
        }
    }

    pub fn settings(&self) -> &RateLimitSettings {
        &self.settings
    }

    /// Counts one message of `device` carrying `telemetry_points` data points (0 for
    /// anything but telemetry); refused when a limit is reached. Checked in order — the
    /// device's messages, its data points, its tenant's messages — a refused message
    /// still counts against the limits checked before the one it went over.
    pub fn admit(&self, device: &Device, telemetry_points: usize) -> Result<(), Exceeded> {
        let checks = self
            .checks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if checks % FORGET_EVERY == FORGET_EVERY - 1 {
            self.device_messages.forget_idle();
            self.device_points.forget_idle();
            self.tenant_messages.forget_idle();
        }
        if !self.device_messages.admit(&device.id, 1) {
            return Err(Exceeded::DeviceMessages);
        }
        let points = u32::try_from(telemetry_points).unwrap_or(u32::MAX);
        if !self.device_points.admit(&device.id, points) {
            return Err(Exceeded::DeviceTelemetryDataPoints);
        }
        if !self.tenant_messages.admit(&device.tenant_id, 1) {
            return Err(Exceeded::TenantMessages);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thingsboard_notation_parses_and_prints_back() {
        let spec: RateLimitSpec = "200:1, 6000:60".parse().unwrap();
        assert_eq!(spec.to_string(), "200:1,6000:60");
        assert!("".parse::<RateLimitSpec>().unwrap().is_empty());
        for bad in [
            "200",
            "200:",
            ":1",
            "0:1",
            "200:0",
            "a:1",
            "200:1;10:60",
            "-1:1",
            "200:1:3",
        ] {
            let e = bad.parse::<RateLimitSpec>().unwrap_err();
            assert!(e.contains("capacity:seconds"), "{bad}: {e}");
        }
    }

    fn device(tenant: TenantId) -> Device {
        Device {
            id: DeviceId::random(),
            tenant_id: tenant,
            customer_id: None,
            name: "d".into(),
            device_type: "default".into(),
            label: None,
            created_ms: 0,
            gateway: false,
            gateway_id: None,
            device_profile_id: None,
        }
    }

    #[test]
    fn each_limit_refuses_what_goes_beyond_it_and_no_more() {
        let limits = DeviceRateLimits::new(RateLimitSettings {
            device_messages: "3:60".parse().unwrap(),
            device_telemetry_data_points: "10:60".parse().unwrap(),
            tenant_messages: "5:60".parse().unwrap(),
        });
        let tenant = TenantId::random();
        let (a, b) = (device(tenant), device(tenant));
        for _ in 0..3 {
            limits.admit(&a, 1).unwrap();
        }
        assert_eq!(limits.admit(&a, 0), Err(Exceeded::DeviceMessages));
        assert_eq!(
            limits.admit(&b, 11),
            Err(Exceeded::DeviceTelemetryDataPoints)
        );
        limits.admit(&b, 10).unwrap();
        limits.admit(&b, 0).unwrap();
        let c = device(tenant);
        assert_eq!(
            limits.admit(&c, 0),
            Err(Exceeded::TenantMessages),
            "3 + 2 of 5"
        );
        let elsewhere = device(TenantId::random());
        limits.admit(&elsewhere, 1).unwrap();
        let none = DeviceRateLimits::new(RateLimitSettings::default());
        for _ in 0..10_000 {
            none.admit(&a, 100).unwrap();
        }
    }
}
