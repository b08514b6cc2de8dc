//! Meter values: OCPP measurands and units normalised to the contract's.
//!
//! OCPP 1.6 sends each sampled value as a string with an optional unit
//! (default Wh) and measurand (default Energy.Active.Import.Register);
//! 2.0.1 sends numbers with a unit and a power-of-ten multiplier. The
//! contract wants Wh, W, A, V, % and °C. Units are matched without regard
//! to case (`kwh` is seen in the field). Measurands the contract does not
//! carry (reactive energy, frequency, …) are skipped; a set of sampled values
//! with none the contract carries produces no sample.

/// One sampled value, as either version sends it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sampled<'a> {
    pub value: f64,
    pub measurand: Option<&'a str>,
    pub unit: Option<&'a str>,
    /// 2.0.1 `unitOfMeasure.multiplier` (value × 10^multiplier); 0 in 1.6.
    pub multiplier: i32,
    pub phase: Option<&'a str>,
    pub location: Option<&'a str>,
}

/// What a set of sampled values (one timestamp) says, in contract units.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    /// Energy.Active.Import.Register, Wh.
    pub energy_wh: Option<f64>,
    /// Power.Active.Import, W.
    pub power_w: Option<f64>,
    /// Current.Import per phase (L1, L2, L3), A; or the one total.
    pub current_a: Vec<f64>,
    /// Voltage per phase, V; or the one value.
    pub voltage_v: Vec<f64>,
    pub soc_percent: Option<f64>,
    pub temperature_c: Option<f64>,
}

impl Reading {
    /// Whether the set carried nothing the contract keeps.
    pub fn is_empty(&self) -> bool {
        *self == Reading::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quantity {
    Energy,
    Power,
    Current,
    Voltage,
    Soc,
    Temperature,
}

/// Reads a set of sampled values. An error names the value's index in
/// `values` and what is wrong (a unit that does not measure the measurand,
/// a number that is not finite).
pub fn normalise(values: &[Sampled<'_>]) -> Result<Reading, (usize, String)> {
    #[derive(Default)]
    struct Phases {
        total: Option<f64>,
        by_phase: [Option<f64>; 3],
    }
    let mut reading = Reading::default();
    let (mut current, mut voltage) = (Phases::default(), Phases::default());
    // Values measured at the grid side (Inlet) only fill in what the outlet
    // (the car's side, the default location) did not report.
    let inlet = |v: &Sampled<'_>| v.location.is_some_and(|l| l.eq_ignore_ascii_case("Inlet"));
    let order = values
        .iter()
        .enumerate()
        .filter(|(_, v)| !inlet(v))
        .chain(values.iter().enumerate().filter(|(_, v)| inlet(v)));
    for (index, sampled) in order {
        let Some((quantity, value)) = convert(sampled).map_err(|why| (index, why))? else {
            continue;
        };
        let fill = |slot: &mut Option<f64>| {
            slot.get_or_insert(value);
        };
        match quantity {
            Quantity::Energy => fill(&mut reading.energy_wh),
            Quantity::Power => fill(&mut reading.power_w),
            Quantity::Soc => fill(&mut reading.soc_percent),
            Quantity::Temperature => fill(&mut reading.temperature_c),
            Quantity::Current | Quantity::Voltage => {
                let phases = if quantity == Quantity::Current {
                    &mut current
                } else {
                    &mut voltage
                };
                match sampled.phase.map(phase_index) {
                    None => fill(&mut phases.total),
                    Some(Some(i)) => fill(&mut phases.by_phase[i]),
                    // Neutral, line-to-line: not what the contract carries.
                    Some(None) => {}
                }
            }
        }
    }
    for (phases, out) in [
        (current, &mut reading.current_a),
        (voltage, &mut reading.voltage_v),
    ] {
        *out = if phases.by_phase.iter().any(Option::is_some) {
            // Phases not reported in between are 0 rather than shifted.
            let last = phases
                .by_phase
                .iter()
                .rposition(Option::is_some)
                .unwrap_or(0);
            phases.by_phase[..=last]
                .iter()
                .map(|v| v.unwrap_or(0.0))
                .collect()
        } else {
            phases.total.into_iter().collect()
        };
    }
    Ok(reading)
}

/// L1 / L1-N → 0 … L3 / L3-N → 2; anything else (N, L1-L2) → None.
fn phase_index(phase: &str) -> Option<usize> {
    let p = phase.to_ascii_uppercase();
    let i = match p.get(..2)? {
        "L1" => 0,
        "L2" => 1,
        "L3" => 2,
        _ => return None,
    };
    matches!(&p[2..], "" | "-N").then_some(i)
}

fn convert(s: &Sampled<'_>) -> Result<Option<(Quantity, f64)>, String> {
    let measurand = s.measurand.unwrap_or("Energy.Active.Import.Register");
    let quantity = match measurand {
        "Energy.Active.Import.Register" => Quantity::Energy,
        "Power.Active.Import" => Quantity::Power,
        "Current.Import" => Quantity::Current,
        "Voltage" => Quantity::Voltage,
        "SoC" => Quantity::Soc,
        "Temperature" => Quantity::Temperature,
        _ => return Ok(None),
    };
    if !s.value.is_finite() {
        return Err(format!(
            "{measurand} value {} is not a finite number",
            s.value
        ));
    }
    if !(-3..=6).contains(&s.multiplier) {
        return Err(format!("multiplier {} is out of range", s.multiplier));
    }
    let value = s.value * 10f64.powi(s.multiplier);
    let unit = s.unit.map(str::to_ascii_lowercase);
    let unit = unit.as_deref();
    let converted = match (quantity, unit) {
        (Quantity::Energy, None | Some("wh")) => value,
        (Quantity::Energy, Some("kwh")) => value * 1000.0,
        (Quantity::Power, None | Some("w")) => value,
        (Quantity::Power, Some("kw")) => value * 1000.0,
        (Quantity::Current, None | Some("a")) => value,
        (Quantity::Voltage, None | Some("v")) => value,
        (Quantity::Soc, None | Some("percent")) => value,
        (Quantity::Temperature, None | Some("celsius")) => value,
        (Quantity::Temperature, Some("fahrenheit")) => (value - 32.0) * 5.0 / 9.0,
        (Quantity::Temperature, Some("k")) => value - 273.15,
        // 1.6 writes the default unit "Wh" on values of every measurand.
        (
            Quantity::Current | Quantity::Voltage | Quantity::Soc | Quantity::Temperature,
            Some("wh"),
        ) if s.multiplier == 0 => value,
        (_, Some(other)) => {
            return Err(format!(
                "unit {:?} does not measure {measurand}",
                s.unit.unwrap_or(other)
            ));
        }
    };
    Ok(Some((quantity, converted)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v<'a>(value: f64, measurand: &'a str, unit: &'a str) -> Sampled<'a> {
        Sampled {
            value,
            measurand: (!measurand.is_empty()).then_some(measurand),
            unit: (!unit.is_empty()).then_some(unit),
            ..Default::default()
        }
    }

    #[test]
    fn units_become_the_contracts() {
        let reading = normalise(&[
            v(12.5, "", "kWh"),
            v(7.2, "Power.Active.Import", "kW"),
            v(80.0, "SoC", "Percent"),
            v(86.0, "Temperature", "Fahrenheit"),
        ])
        .unwrap();
        assert_eq!(reading.energy_wh, Some(12_500.0));
        assert_eq!(reading.power_w, Some(7_200.0));
        assert_eq!(reading.soc_percent, Some(80.0));
        assert_eq!(reading.temperature_c, Some(30.0));
        let kelvin = normalise(&[v(300.15, "Temperature", "K")]).unwrap();
        assert!((kelvin.temperature_c.unwrap() - 27.0).abs() < 1e-9);
        // Lower case from sloppy firmware, and the default Wh.
        assert_eq!(
            normalise(&[v(3.0, "", "kwh")]).unwrap().energy_wh,
            Some(3000.0)
        );
        assert_eq!(normalise(&[v(3.0, "", "")]).unwrap().energy_wh, Some(3.0));
    }

    #[test]
    fn multipliers_scale_2_0_1_values() {
        let mut power = v(7.2, "Power.Active.Import", "W");
        power.multiplier = 3;
        let mut energy = v(1234.5, "Energy.Active.Import.Register", "kWh");
        energy.multiplier = -3;
        let reading = normalise(&[power, energy]).unwrap();
        assert_eq!(reading.power_w, Some(7200.0));
        assert!((reading.energy_wh.unwrap() - 1234.5).abs() < 1e-9);
    }

    #[test]
    fn phases_are_ordered_and_totals_kept() {
        let mut values = Vec::new();
        for (phase, amps) in [("L3", 15.0), ("L1", 16.0), ("N", 0.5), ("L2", 15.5)] {
            let mut s = v(amps, "Current.Import", "A");
            s.phase = Some(phase);
            values.push(s);
        }
        let mut volts = v(230.0, "Voltage", "V");
        volts.phase = Some("L1-N");
        values.push(volts);
        let reading = normalise(&values).unwrap();
        assert_eq!(reading.current_a, vec![16.0, 15.5, 15.0]);
        assert_eq!(reading.voltage_v, vec![230.0]);
        let total = normalise(&[v(32.0, "Current.Import", "A")]).unwrap();
        assert_eq!(total.current_a, vec![32.0]);
    }

    #[test]
    fn power_only_is_a_reading_without_an_energy_register() {
        let reading = normalise(&[v(3.6, "Power.Active.Import", "kW")]).unwrap();
        assert_eq!((reading.energy_wh, reading.power_w), (None, Some(3600.0)));
        assert!(!reading.is_empty());
        let unknown = normalise(&[v(50.0, "Frequency", "")]).unwrap();
        assert!(unknown.is_empty());
    }

    #[test]
    fn the_outlet_wins_over_the_inlet() {
        let mut inlet = v(9_000.0, "", "Wh");
        inlet.location = Some("Inlet");
        let reading = normalise(&[inlet, v(8_000.0, "", "Wh")]).unwrap();
        assert_eq!(reading.energy_wh, Some(8_000.0));
        assert_eq!(normalise(&[inlet]).unwrap().energy_wh, Some(9_000.0));
    }

    #[test]
    fn a_unit_that_does_not_fit_names_the_value() {
        let err = normalise(&[v(1.0, "", "Wh"), v(1.0, "Power.Active.Import", "kWh")]).unwrap_err();
        assert_eq!(err.0, 1);
        assert!(
            err.1.contains("\"kWh\"") && err.1.contains("Power.Active.Import"),
            "{}",
            err.1
        );
        assert!(normalise(&[v(f64::NAN, "", "")]).is_err());
    }
}
