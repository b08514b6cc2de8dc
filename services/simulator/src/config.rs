//! The simulator's settings: a mode and flags on the command line, each flag
//! also readable from the environment (`CITYBRAIN_SIMULATOR_*`); flags win.

use citybrain_config::{ConfigError, Env};
use std::time::Duration;

/// The development key of the local stack's `lucheng` tenant (public: see
/// `deploy/local/dev-api-keys.toml`).
pub const DEV_API_KEY: &str = "cb_dev_lucheng_simulator_key_0001";
/// How far back a backfill may reach: ingest refuses events older than 30
/// days, and a backfill starts at the UTC midnight before `now - days`.
pub const MAX_DAYS: u32 = 28;
/// Where `make run` serves the OCPP gateway's chargers.
pub const DEFAULT_OCPP_URL: &str = "ws://127.0.0.1:9220/ocpp";

pub const USAGE: &str = "\
usage: citybrain-simulator <live|backfill|run> [flags]

modes:
  live      run the town in real time (events are sent as the clock reaches them)
  backfill  send --days of history ending now, as fast as ingest takes it, then exit
  run       backfill, then continue live (what `make run` uses)

flags (environment variable in brackets):
  --days N            days of history; the town starts at the UTC midnight N days
                      before now [CITYBRAIN_SIMULATOR_DAYS] (default 3 for backfill
                      and run, 0 for live; at most 28)
  --scale F           multiply the number of devices [CITYBRAIN_SIMULATOR_SCALE] (1)
  --seed N            seed of the model [CITYBRAIN_SIMULATOR_SEED] (20240501)
  --ingest-url URL    ingest gRPC endpoint [CITYBRAIN_SIMULATOR_INGEST_URL]
                      (http://127.0.0.1:50051)
  --api-key KEY       API key sent as x-api-key [CITYBRAIN_SIMULATOR_API_KEY]
                      (the development key)
  --batch-size N      events per request, at most 1000 [CITYBRAIN_SIMULATOR_BATCH_SIZE] (500)
  --in-flight N       requests in flight at once [CITYBRAIN_SIMULATOR_IN_FLIGHT] (4)
  --no-progress       no progress bar on stderr [CITYBRAIN_SIMULATOR_NO_PROGRESS]
  --send-after T      events at or before T (Unix seconds) were sent by an earlier
                      run: generate them (the town's state needs them), send only
                      later ones [CITYBRAIN_SIMULATOR_SEND_AFTER] (send all)
  --chargers-via-ocpp the chargers speak OCPP 1.6 to the OCPP gateway, one WebSocket
                      per station, instead of sending their events to ingest
                      [CITYBRAIN_SIMULATOR_CHARGERS_VIA_OCPP] (off)
  --ocpp-url URL      the gateway's charger endpoint, without the station id
                      [CITYBRAIN_SIMULATOR_OCPP_URL] (ws://127.0.0.1:9220/ocpp)
  --ocpp-password PW  every station's password [CITYBRAIN_SIMULATOR_OCPP_PASSWORD]
                      (the development password of deploy/local/dev-ocpp-stations.toml)
  --vehicles-via-jt808 HOST:PORT
                      once live, the vehicles of --jt808-terminals report as JT/T 808
                      terminals to the jt808 gateway at HOST:PORT instead of through
                      ingest [CITYBRAIN_SIMULATOR_VEHICLES_VIA_JT808] (off)
  --jt808-terminals FILE
                      the gateway's terminal registry: which vehicles, which
                      terminal numbers and plates [CITYBRAIN_SIMULATOR_JT808_TERMINALS]
                      (deploy/local/jt808-terminals.toml)
";

/// The password of every station in `deploy/local/dev-ocpp-stations.toml`
/// (public; the gateway refuses it in production).
pub const DEV_OCPP_PASSWORD: &str = "cb_dev_ocpp_station_password";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Live,
    Backfill,
    /// Backfill, then live.
    Run,
}

/// Everything the simulator can be told.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    pub mode: Mode,
    /// Days of history before today (UTC) at which the town starts.
    pub days: u32,
    /// Multiplies the number of devices.
    pub scale: f64,
    /// Seeds the model: the same seed, days and scale give the same events.
    pub seed: u64,
    /// The ingest gRPC endpoint.
    pub ingest_url: String,
    /// Sent in the `x-api-key` metadata entry.
    pub api_key: String,
    /// Events per request.
    pub batch_size: usize,
    /// Requests in flight at once (bounds memory and pressure on ingest).
    pub in_flight: usize,
    /// Draw a progress bar on stderr while catching up.
    pub progress: bool,
    /// `CITYBRAIN_LOG_JSON`: JSON log lines instead of text.
    pub log_json: bool,
    /// How long shutdown waits for requests in flight.
    pub drain_timeout: Duration,
    /// Unix seconds up to which an earlier run sent the town's events
    /// (`make run` resumes from what ClickHouse holds).
    pub send_after: Option<i64>,
    /// The chargers speak OCPP to the gateway at this URL (`…/ocpp`)
    /// instead of sending their events to ingest.
    pub chargers_via_ocpp: Option<String>,
    /// The stations' OCPP password.
    pub ocpp_password: String,
    /// The jt808 gateway (`host:port`) that the registry's vehicles report
    /// to once the simulator runs live.
    pub vehicles_via_jt808: Option<String>,
    /// The terminal registry shared with the gateway.
    pub jt808_terminals: std::path::PathBuf,
}

/// Why the settings could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFault {
    #[error(transparent)]
    Env(#[from] ConfigError),
    #[error("{0}\n\n{USAGE}")]
    Usage(String),
    #[error("--{flag} {value:?} is invalid: {reason}")]
    Flag {
        flag: &'static str,
        value: String,
        reason: String,
    },
    /// `--help` was asked for.
    #[error("{USAGE}")]
    Help,
}

impl SimulatorConfig {
    /// Defaults for `mode`, without reading the environment.
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            days: if mode == Mode::Live { 0 } else { 3 },
            scale: 1.0,
            seed: 20_240_501,
            ingest_url: "http://127.0.0.1:50051".into(),
            api_key: DEV_API_KEY.into(),
            batch_size: 500,
            in_flight: 4,
            progress: true,
            log_json: false,
            drain_timeout: Duration::from_secs(15),
            send_after: None,
            chargers_via_ocpp: None,
            ocpp_password: DEV_OCPP_PASSWORD.into(),
            vehicles_via_jt808: None,
            jt808_terminals: "deploy/local/jt808-terminals.toml".into(),
        }
    }

    /// Reads the environment, then `args` (without the program name).
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Self, ConfigFault> {
        let env = Env::process();
        let mut args = args.into_iter().peekable();
        if matches!(
            args.peek().map(String::as_str),
            Some("-h" | "--help" | "help")
        ) {
            return Err(ConfigFault::Help);
        }
        let mode_text = match args.next() {
            Some(mode) => mode,
            None => env.string_or("CITYBRAIN_SIMULATOR_MODE", ""),
        };
        let mode = match mode_text.as_str() {
            "live" => Mode::Live,
            "backfill" => Mode::Backfill,
            "run" => Mode::Run,
            "" => return Err(ConfigFault::Usage("a mode is required".into())),
            other => return Err(ConfigFault::Usage(format!("unknown mode {other:?}"))),
        };
        let defaults = Self::new(mode);
        let mut config = Self {
            days: env.var_or("CITYBRAIN_SIMULATOR_DAYS", defaults.days)?,
            scale: env.var_or("CITYBRAIN_SIMULATOR_SCALE", defaults.scale)?,
            seed: env.var_or("CITYBRAIN_SIMULATOR_SEED", defaults.seed)?,
            ingest_url: env.string_or("CITYBRAIN_SIMULATOR_INGEST_URL", &defaults.ingest_url),
            api_key: env.string_or("CITYBRAIN_SIMULATOR_API_KEY", &defaults.api_key),
            batch_size: env.var_or("CITYBRAIN_SIMULATOR_BATCH_SIZE", defaults.batch_size)?,
            in_flight: env.var_or("CITYBRAIN_SIMULATOR_IN_FLIGHT", defaults.in_flight)?,
            progress: !env.bool_or("CITYBRAIN_SIMULATOR_NO_PROGRESS", false)?,
            log_json: env.bool_or("CITYBRAIN_LOG_JSON", false)?,
            send_after: match env.string_or("CITYBRAIN_SIMULATOR_SEND_AFTER", "").as_str() {
                "" => None,
                text => Some(parse("send-after", text.to_string())?),
            },
            ocpp_password: env.string_or("CITYBRAIN_SIMULATOR_OCPP_PASSWORD", DEV_OCPP_PASSWORD),
            vehicles_via_jt808: env.optional("CITYBRAIN_SIMULATOR_VEHICLES_VIA_JT808"),
            jt808_terminals: env
                .string_or(
                    "CITYBRAIN_SIMULATOR_JT808_TERMINALS",
                    &defaults.jt808_terminals.to_string_lossy(),
                )
                .into(),
            ..defaults
        };
        let mut ocpp = env.bool_or("CITYBRAIN_SIMULATOR_CHARGERS_VIA_OCPP", false)?;
        let mut ocpp_url = env.string_or("CITYBRAIN_SIMULATOR_OCPP_URL", DEFAULT_OCPP_URL);
        while let Some(flag) = args.next() {
            let mut value = |name: &'static str| {
                args.next()
                    .ok_or_else(|| ConfigFault::Usage(format!("--{name} needs a value")))
            };
            match flag.as_str() {
                "--days" => config.days = parse("days", value("days")?)?,
                "--scale" => config.scale = parse("scale", value("scale")?)?,
                "--seed" => config.seed = parse("seed", value("seed")?)?,
                "--ingest-url" => config.ingest_url = value("ingest-url")?,
                "--api-key" => config.api_key = value("api-key")?,
                "--batch-size" => config.batch_size = parse("batch-size", value("batch-size")?)?,
                "--in-flight" => config.in_flight = parse("in-flight", value("in-flight")?)?,
                "--no-progress" => config.progress = false,
                "--send-after" => {
                    config.send_after = Some(parse("send-after", value("send-after")?)?);
                }
                "--chargers-via-ocpp" => ocpp = true,
                "--ocpp-url" => ocpp_url = value("ocpp-url")?,
                "--ocpp-password" => config.ocpp_password = value("ocpp-password")?,
                "--vehicles-via-jt808" => {
                    config.vehicles_via_jt808 = Some(value("vehicles-via-jt808")?);
                }
                "--jt808-terminals" => config.jt808_terminals = value("jt808-terminals")?.into(),
                "-h" | "--help" => return Err(ConfigFault::Help),
                other => return Err(ConfigFault::Usage(format!("unknown flag {other:?}"))),
            }
        }
        config.chargers_via_ocpp = ocpp.then_some(ocpp_url);
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), ConfigFault> {
        let invalid = |flag, value: String, reason: &str| {
            Err(ConfigFault::Flag {
                flag,
                value,
                reason: reason.into(),
            })
        };
        if self.days > MAX_DAYS {
            return invalid(
                "days",
                self.days.to_string(),
                "at most 28: ingest refuses events older than 30 days",
            );
        }
        if !(self.scale.is_finite() && self.scale > 0.0 && self.scale <= 1000.0) {
            return invalid(
                "scale",
                self.scale.to_string(),
                "expected a number above 0 and at most 1000",
            );
        }
        if !(1..=1000).contains(&self.batch_size) {
            return invalid(
                "batch-size",
                self.batch_size.to_string(),
                "expected 1..=1000 (ingest's limit)",
            );
        }
        if !(1..=64).contains(&self.in_flight) {
            return invalid("in-flight", self.in_flight.to_string(), "expected 1..=64");
        }
        if !(self.ingest_url.starts_with("http://") || self.ingest_url.starts_with("https://")) {
            return invalid(
                "ingest-url",
                self.ingest_url.clone(),
                "expected http://host:port or https://…",
            );
        }
        if self.api_key.trim().is_empty() {
            return invalid("api-key", String::new(), "an API key is required");
        }
        if let Some(url) = &self.chargers_via_ocpp
            && !(url.starts_with("ws://") || url.starts_with("wss://"))
        {
            return invalid(
                "ocpp-url",
                url.clone(),
                "expected ws://host:port/ocpp (the gateway's charger endpoint)",
            );
        }
        if let Some(addr) = &self.vehicles_via_jt808
            && addr
                .rsplit_once(':')
                .is_none_or(|(_, port)| port.parse::<u16>().is_err())
        {
            return invalid("vehicles-via-jt808", addr.clone(), "expected HOST:PORT");
        }
        Ok(())
    }
}

fn parse<T>(flag: &'static str, value: String) -> Result<T, ConfigFault>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    value
        .trim()
        .parse()
        .map_err(|err: T::Err| ConfigFault::Flag {
            flag,
            value,
            reason: err.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn flags_set_the_config() {
        let config = SimulatorConfig::from_args(args(
            "backfill --days 5 --scale 0.5 --seed 7 --ingest-url http://ingest:50051 --batch-size 200 --no-progress",
        ))
        .unwrap();
        assert_eq!(config.mode, Mode::Backfill);
        assert_eq!((config.days, config.scale, config.seed), (5, 0.5, 7));
        assert_eq!(config.ingest_url, "http://ingest:50051");
        assert_eq!(config.batch_size, 200);
        assert!(!config.progress);
        assert_eq!(config.api_key, DEV_API_KEY);
        let jt808 = SimulatorConfig::from_args(args(
            "run --vehicles-via-jt808 127.0.0.1:6808 --jt808-terminals t.toml",
        ))
        .unwrap();
        assert_eq!(jt808.vehicles_via_jt808.as_deref(), Some("127.0.0.1:6808"));
        assert_eq!(jt808.jt808_terminals, std::path::PathBuf::from("t.toml"));
        assert!(SimulatorConfig::from_args(args("run --vehicles-via-jt808 gateway")).is_err());
        let resumed = SimulatorConfig::from_args(args("run --send-after 1780000000")).unwrap();
        assert_eq!(resumed.send_after, Some(1_780_000_000));
        assert!(SimulatorConfig::from_args(args("run --send-after soon")).is_err());
        let live = SimulatorConfig::from_args(args("live")).unwrap();
        assert_eq!((live.mode, live.days), (Mode::Live, 0));
        assert_eq!(live.chargers_via_ocpp, None);
        let ocpp = SimulatorConfig::from_args(args("run --chargers-via-ocpp")).unwrap();
        assert_eq!(ocpp.chargers_via_ocpp.as_deref(), Some(DEFAULT_OCPP_URL));
        let elsewhere = SimulatorConfig::from_args(args(
            "run --chargers-via-ocpp --ocpp-url ws://gw:9220/ocpp",
        ))
        .unwrap();
        assert_eq!(
            elsewhere.chargers_via_ocpp.as_deref(),
            Some("ws://gw:9220/ocpp")
        );
        assert!(
            SimulatorConfig::from_args(args("run --chargers-via-ocpp --ocpp-url http://gw"))
                .is_err()
        );
    }

    #[test]
    fn bad_settings_name_the_flag() {
        let err = SimulatorConfig::from_args(args("backfill --days 40")).unwrap_err();
        assert!(
            err.to_string().starts_with("--days \"40\" is invalid"),
            "{err}"
        );
        let err = SimulatorConfig::from_args(args("run --scale zero")).unwrap_err();
        assert!(err.to_string().contains("--scale"), "{err}");
        let err = SimulatorConfig::from_args(args("fly")).unwrap_err();
        assert!(err.to_string().contains("unknown mode \"fly\""), "{err}");
        let err = SimulatorConfig::from_args(args("live --batch-size 5000")).unwrap_err();
        assert!(err.to_string().contains("--batch-size"), "{err}");
        assert!(matches!(
            SimulatorConfig::from_args(args("--help")),
            Err(ConfigFault::Help)
        ));
    }
}
