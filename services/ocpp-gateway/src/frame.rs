//! OCPP-J framing: the JSON arrays carried in WebSocket text messages.
//!
//! - CALL `[2, "<id>", "<Action>", {payload}]`
//! - CALLRESULT `[3, "<id>", {payload}]`
//! - CALLERROR `[4, "<id>", "<code>", "<description>", {details}]`
//!
//! Parsing is pure; a frame that cannot be read is an error carrying the
//! message id when it could be read (the answer must echo it) and a
//! description for the CALLERROR.

use serde_json::{Value, json};

/// Message ids longer than this are refused (the spec says 36).
const MAX_ID_CHARS: usize = 128;
/// OCPP 2.0.1 bounds errorDescription at 255 characters.
const MAX_DESCRIPTION_CHARS: usize = 255;
/// The id a CALLERROR carries when the message's own id could not be read
/// (what OCPP 2.0.1 prescribes; 1.6 says nothing).
pub const UNKNOWN_ID: &str = "-1";

/// One OCPP-J message.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Call {
        id: String,
        action: String,
        payload: Value,
    },
    CallResult {
        id: String,
        payload: Value,
    },
    CallError {
        id: String,
        code: String,
        description: String,
    },
}

/// A text message that is not a well-formed OCPP-J frame.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameError {
    /// The message id, when it could be read.
    pub id: Option<String>,
    pub description: String,
}

/// Reads one WebSocket text message.
pub fn parse(text: &str) -> Result<Frame, FrameError> {
    let err = |id: Option<&str>, description: String| FrameError {
        id: id.map(str::to_string),
        description,
    };
    let value: Value = serde_json::from_str(text)
        .map_err(|e| err(None, format!("the message is not JSON: {e}")))?;
    let Value::Array(items) = value else {
        return Err(err(None, "an OCPP-J message is a JSON array".into()));
    };
    let type_id = items.first().and_then(Value::as_u64);
    let id = match items.get(1) {
        Some(Value::String(id)) if !id.is_empty() && id.chars().count() <= MAX_ID_CHARS => id,
        Some(Value::String(_)) => {
            return Err(err(
                None,
                format!("the message id must be 1..{MAX_ID_CHARS} characters"),
            ));
        }
        _ => {
            return Err(err(
                None,
                "the second element, the message id, must be a string".into(),
            ));
        }
    };
    let some_id = Some(id.as_str());
    match (type_id, items.len()) {
        (Some(2), 4) => {
            let Some(action) = items[2].as_str() else {
                return Err(err(some_id, "the action of a CALL must be a string".into()));
            };
            if !items[3].is_object() {
                return Err(err(
                    some_id,
                    "the payload of a CALL must be a JSON object".into(),
                ));
            }
            Ok(Frame::Call {
                id: id.clone(),
                action: action.to_string(),
                payload: items[3].clone(),
            })
        }
        (Some(2), n) => Err(err(some_id, format!("a CALL has 4 elements, not {n}"))),
        (Some(3), 3) => Ok(Frame::CallResult {
            id: id.clone(),
            payload: items[2].clone(),
        }),
        // Some firmware leaves out the empty details object.
        (Some(4), 4 | 5) => Ok(Frame::CallError {
            id: id.clone(),
            code: items[2].as_str().unwrap_or_default().to_string(),
            description: items[3].as_str().unwrap_or_default().to_string(),
        }),
        (Some(3 | 4), n) => Err(err(some_id, format!("unexpected length {n}"))),
        _ => Err(err(
            some_id,
            "the first element must be the message type 2, 3 or 4".into(),
        )),
    }
}

/// `[3, id, payload]`.
pub fn call_result(id: &str, payload: &Value) -> String {
    json!([3, id, payload]).to_string()
}

/// `[4, id, code, description, {}]`, the description cut to what 2.0.1 allows.
pub fn call_error(id: &str, code: &str, description: &str) -> String {
    let description: String = description.chars().take(MAX_DESCRIPTION_CHARS).collect();
    json!([4, id, code, description, {}]).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_message_types_parse() {
        assert_eq!(
            parse(r#"[2,"19223201","BootNotification",{"chargePointVendor":"VendorX"}]"#),
            Ok(Frame::Call {
                id: "19223201".into(),
                action: "BootNotification".into(),
                payload: json!({"chargePointVendor": "VendorX"}),
            })
        );
        assert_eq!(
            parse(r#"[3,"19223201",{"status":"Accepted"}]"#),
            Ok(Frame::CallResult {
                id: "19223201".into(),
                payload: json!({"status": "Accepted"}),
            })
        );
        assert_eq!(
            parse(
                r#"[4,"162376037","NotSupported","SetDisplayMessageRequest not implemented",{}]"#
            ),
            Ok(Frame::CallError {
                id: "162376037".into(),
                code: "NotSupported".into(),
                description: "SetDisplayMessageRequest not implemented".into(),
            })
        );
    }

    #[test]
    fn broken_frames_keep_the_id_when_there_is_one() {
        let cases = [
            ("not json", None, "not JSON"),
            (r#"{"a":1}"#, None, "JSON array"),
            (r#"[2,17,"Heartbeat",{}]"#, None, "message id"),
            (r#"[2,"",  "Heartbeat",{}]"#, None, "1..128"),
            (r#"[2,"a1","Heartbeat"]"#, Some("a1"), "4 elements"),
            (r#"[2,"a1",5,{}]"#, Some("a1"), "action"),
            (r#"[2,"a1","Heartbeat",[]]"#, Some("a1"), "JSON object"),
            (r#"[7,"a1","Heartbeat",{}]"#, Some("a1"), "message type"),
        ];
        for (text, id, says) in cases {
            let err = parse(text).unwrap_err();
            assert_eq!(err.id.as_deref(), id, "{text}");
            assert!(
                err.description.contains(says),
                "{text}: {}",
                err.description
            );
        }
    }

    #[test]
    fn answers_are_ocpp_j_arrays() {
        assert_eq!(
            call_result("a1", &json!({"currentTime": "2024-05-01T08:00:00.000Z"})),
            r#"[3,"a1",{"currentTime":"2024-05-01T08:00:00.000Z"}]"#
        );
        assert_eq!(
            call_error("a1", "NotImplemented", "no such action"),
            r#"[4,"a1","NotImplemented","no such action",{}]"#
        );
        let long = "x".repeat(400);
        let text = call_error("a1", "GenericError", &long);
        assert!(text.contains(&"x".repeat(255)) && !text.contains(&"x".repeat(256)));
    }
}
