//! OCPP 2.0.1 payloads the charging station sends, read leniently (unknown
//! fields ignored; only what the gateway uses is required).

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BootNotification {
    pub charging_station: Option<ChargingStation>,
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChargingStation {
    pub model: Option<String>,
    pub vendor_name: Option<String>,
    pub serial_number: Option<String>,
    pub firmware_version: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusNotification {
    pub timestamp: String,
    pub connector_status: String,
    pub evse_id: u32,
    pub connector_id: u32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionEvent {
    pub event_type: String,
    pub timestamp: String,
    pub trigger_reason: Option<String>,
    pub seq_no: u64,
    #[serde(default)]
    pub offline: bool,
    pub transaction_info: TransactionInfo,
    pub id_token: Option<IdToken>,
    pub evse: Option<Evse>,
    #[serde(default)]
    pub meter_value: Vec<MeterValue>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransactionInfo {
    pub transaction_id: String,
    pub charging_state: Option<String>,
    pub stopped_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdToken {
    pub id_token: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Evse {
    pub id: u32,
    pub connector_id: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeterValues {
    pub evse_id: u32,
    pub meter_value: Vec<MeterValue>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MeterValue {
    pub timestamp: String,
    pub sampled_value: Vec<SampledValue>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SampledValue {
    /// A number; a string holding one (1.6 habits) is read too.
    #[serde(deserialize_with = "number_or_string")]
    pub value: f64,
    pub context: Option<String>,
    pub measurand: Option<String>,
    pub phase: Option<String>,
    pub location: Option<String>,
    pub unit_of_measure: Option<UnitOfMeasure>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UnitOfMeasure {
    pub unit: Option<String>,
    #[serde(default)]
    pub multiplier: i32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifyEvent {
    pub event_data: Vec<EventData>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventData {
    pub event_id: i64,
    pub timestamp: String,
    pub actual_value: String,
    pub tech_code: Option<String>,
    pub tech_info: Option<String>,
    #[serde(default)]
    pub cleared: bool,
    pub component: Component,
    pub variable: Variable,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    pub name: String,
    pub evse: Option<Evse>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Variable {
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecurityEventNotification {
    #[serde(rename = "type")]
    pub kind: String,
    pub timestamp: String,
    pub tech_info: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Authorize {
    pub id_token: IdToken,
}

fn number_or_string<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Number {
        Number(f64),
        Text(String),
    }
    match Number::deserialize(deserializer)? {
        Number::Number(n) => Ok(n),
        Number::Text(text) => text
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("{text:?} is not a number"))),
    }
}
