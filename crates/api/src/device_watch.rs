//! Following the sound devices while the app runs: a headset plugged in or pulled out
//! re-applies the preference rules, for the calls in progress too.
//!
//! Sans-IO: the front end lists the devices (every few seconds, and after the settings
//! change) and feeds the names in; the watch says whether the list changed and which
//! [`Command::SetAudio`] to send.

use crate::{AppConfig, Command};

/// What the front end must do after [`DeviceWatch::update`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceUpdate {
    /// The set of devices differs from the last update (refresh the device lists shown).
    pub devices_changed: bool,
    /// The microphone or speaker to use changed: send this to the phone.
    pub switch: Option<Command>,
}

/// The devices last seen and the route last applied.
#[derive(Debug, Clone, Default)]
pub struct DeviceWatch {
    inputs: Vec<String>,
    outputs: Vec<String>,
    microphone: Option<String>,
    speaker: Option<String>,
}

impl DeviceWatch {
    /// Starts from the devices present and the route the phone started with.
    pub fn new(config: &AppConfig, inputs: Vec<String>, outputs: Vec<String>) -> Self {
        let (inputs, outputs) = (sorted(inputs), sorted(outputs));
        let (microphone, speaker) = config.device_route(&inputs, &outputs);
        Self {
            inputs,
            outputs,
            microphone,
            speaker,
        }
    }

    /// Feeds the devices present now under the (possibly changed) `config`.
    pub fn update(
        &mut self,
        config: &AppConfig,
        inputs: Vec<String>,
        outputs: Vec<String>,
    ) -> DeviceUpdate {
        let (inputs, outputs) = (sorted(inputs), sorted(outputs));
        let devices_changed = inputs != self.inputs || outputs != self.outputs;
        self.inputs = inputs;
        self.outputs = outputs;
        let (microphone, speaker) = config.device_route(&self.inputs, &self.outputs);
        let input = microphone.clone().filter(|_| microphone != self.microphone);
        let output = speaker.clone().filter(|_| speaker != self.speaker);
        self.microphone = microphone;
        self.speaker = speaker;
        let switch =
            (input.is_some() || output.is_some()).then_some(Command::SetAudio { input, output });
        DeviceUpdate {
            devices_changed,
            switch,
        }
    }

    /// Re-applies the rules to the devices last seen (after the settings changed).
    pub fn reapply(&mut self, config: &AppConfig) -> Option<Command> {
        let (inputs, outputs) = (self.inputs.clone(), self.outputs.clone());
        self.update(config, inputs, outputs).switch
    }
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| (*name).to_owned()).collect()
    }

    fn headset_first() -> AppConfig {
        AppConfig {
            preferred_devices: Some(vec!["headset".into()]),
            ..AppConfig::default()
        }
    }

    #[test]
    fn a_preferred_headset_plugged_in_takes_over_and_gives_back_when_pulled() {
        let config = headset_first();
        let mut watch = DeviceWatch::new(&config, names(&["built-in-mic"]), names(&["speakers"]));
        // Nothing changed: nothing to do.
        let same = watch.update(&config, names(&["built-in-mic"]), names(&["speakers"]));
        assert_eq!(same, DeviceUpdate::default());
        let plugged = watch.update(
            &config,
            names(&["built-in-mic", "usb-headset-mic"]),
            names(&["speakers", "usb-headset"]),
        );
        assert!(plugged.devices_changed);
        assert_eq!(
            plugged.switch,
            Some(Command::SetAudio {
                input: Some("device:usb-headset-mic".into()),
                output: Some("device:usb-headset".into()),
            })
        );
        let pulled = watch.update(&config, names(&["built-in-mic"]), names(&["speakers"]));
        assert_eq!(
            pulled.switch,
            Some(Command::SetAudio {
                input: Some("device:default".into()),
                output: Some("device:default".into()),
            })
        );
    }

    #[test]
    fn a_device_that_matches_no_rule_only_refreshes_the_lists() {
        let config = headset_first();
        let mut watch = DeviceWatch::new(&config, names(&["mic"]), names(&["speakers"]));
        let update = watch.update(&config, names(&["mic"]), names(&["speakers", "hdmi"]));
        assert!(update.devices_changed);
        assert_eq!(update.switch, None);
        // Order of listing does not matter.
        let update = watch.update(&config, names(&["mic"]), names(&["hdmi", "speakers"]));
        assert_eq!(update, DeviceUpdate::default());
    }

    #[test]
    fn a_new_choice_in_the_settings_switches_only_the_side_that_changed() {
        let mut config = headset_first();
        let inputs = names(&["mic", "usb-headset-mic"]);
        let outputs = names(&["speakers", "usb-headset"]);
        let mut watch = DeviceWatch::new(&config, inputs, outputs);
        config.speaker = Some("speakers".into());
        assert_eq!(
            watch.reapply(&config),
            Some(Command::SetAudio {
                input: None,
                output: Some("device:speakers".into()),
            })
        );
        assert_eq!(watch.reapply(&config), None, "applied once");
    }

    #[test]
    fn sides_pinned_by_audio_specs_are_never_switched() {
        let config = AppConfig {
            audio_in: Some("voice.wav".into()),
            audio_out: Some("null".into()),
            ..headset_first()
        };
        let mut watch = DeviceWatch::new(&config, names(&[]), names(&[]));
        let update = watch.update(&config, names(&["headset-mic"]), names(&["headset"]));
        assert!(update.devices_changed);
        assert_eq!(update.switch, None);
    }
}
