//! Hardware maps: which device is which logical input on this box.
//!
//! Profiles name logical inputs (`sdi1`, `webcam`, `line-in`), never device nodes, so a profile
//! copied to another box — a standby taking over a channel — resolves against *that* box's
//! map. A map is a TOML file (`hw/*.toml` in the source tree, installed as
//! `/etc/smoothcast/hw.toml`), and its device paths should be the stable names the udev rules
//! in `hw/99-smoothcast.rules` create (`/dev/smoothcast/sdi1`), not `/dev/videoN`, whose
//! numbers change with probe order.
//!
//! ```toml
//! [box]
//! model = "sdi4"
//!
//! [input_loss]            # optional, the box's loss policy (see capture::loss)
//! repeat_for = 1.0
//! black_for = 2.0
//! slate = "/etc/smoothcast/slate.png"
//!
//! [input.sdi1.video]
//! device = "/dev/smoothcast/sdi1"
//! card_input = 0          # optional: VIDIOC_S_INPUT on multi-connector cards
//!
//! [input.sdi1.audio]      # the SDI embedded audio of the same input
//! alsa = "hw:CARD=sdi1,DEV=0"
//! channels = [1, 2, 3, 4, 5, 6, 7, 8]   # device channels forming this input, in order
//! ```
//!
//! `smoothcast hw` ([`list`]) shows what the kernel sees, to write a map for a new box.

pub mod list;

use crate::capture::loss::LossPolicy;
use crate::capture::v4l2::device::VideoDevice;
use crate::profile::{AudioInput, Plan, VideoInput};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the box's map is read from unless told otherwise: `$SMOOTHCAST_HW_MAP`, else
/// `/etc/smoothcast/hw.toml`.
pub fn default_map_path() -> PathBuf {
    std::env::var_os("SMOOTHCAST_HW_MAP")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/smoothcast/hw.toml"))
}

/// Errors of hardware maps, naming the map file and the input.
#[derive(Debug, thiserror::Error)]
pub enum HwError {
    /// The map file cannot be read.
    #[error("hw map {path}: {source}")]
    Read {
        /// The map file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The map is not valid (syntax, unknown field, bad value).
    #[error("hw map {path}: {reason}")]
    Invalid {
        /// The map file.
        path: PathBuf,
        /// What is wrong, naming the field.
        reason: String,
    },
    /// The box has no such logical input, or not of the kind the profile uses it for.
    #[error(
        "hw map {path} (box {model}) has no input \"{input}\" for the {kind}; it has: {available}"
    )]
    MissingInput {
        /// The map file.
        path: PathBuf,
        /// The box model the map describes.
        model: String,
        /// The logical input the profile names.
        input: String,
        /// `video` or `audio`.
        kind: &'static str,
        /// The map's inputs that have this kind, comma-separated.
        available: String,
    },
    /// The profile's channel map asks for a channel the input does not have.
    #[error("hw map {path}: input \"{input}\" has {channels} audio channels; the profile's channel_map asks for channel {wanted}")]
    Channel {
        /// The map file.
        path: PathBuf,
        /// The logical input.
        input: String,
        /// Channels the input has.
        channels: usize,
        /// The (1-based) channel asked for.
        wanted: u16,
    },
}

impl HwError {
    /// True when the map or the profile is wrong (exit code 2) rather than the run. Every hw
    /// map error is: a missing or unreadable map is the box's configuration too.
    pub fn is_bad_input(&self) -> bool {
        true
    }
}

/// The file as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MapFile {
    #[serde(rename = "box")]
    box_: BoxSection,
    input_loss: Option<LossSection>,
    #[serde(default)]
    input: BTreeMap<String, InputSection>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BoxSection {
    model: String,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LossSection {
    repeat_for: Option<f64>,
    black_for: Option<f64>,
    slate: Option<PathBuf>,
    no_signal_after: Option<f64>,
    reopen_max: Option<f64>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSection {
    video: Option<VideoSection>,
    audio: Option<AudioSection>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VideoSection {
    device: PathBuf,
    card_input: Option<u32>,
    standard: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AudioSection {
    alsa: String,
    channels: Vec<u16>,
}

/// A logical audio input: an ALSA capture device and the channels of it that form the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AudioDevice {
    /// Logical input name (`line-in`).
    pub input: String,
    /// ALSA device name (`hw:CARD=sdi1,DEV=0`), preferably by card id, not number.
    pub alsa: String,
    /// Device channels (1-based) of the logical input, in order.
    pub channels: Vec<u16>,
}

/// One logical input of the box.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HwInput {
    /// Its picture, if it has one.
    pub video: Option<VideoDevice>,
    /// Its sound, if it has one (SDI embedded audio, a line input, a microphone).
    pub audio: Option<AudioDevice>,
}

/// A box's hardware map.
#[derive(Clone, Debug, PartialEq)]
pub struct HwMap {
    /// The file it was read from (for messages).
    pub path: PathBuf,
    /// Box model name.
    pub model: String,
    /// Free text about the box.
    pub description: Option<String>,
    /// The box's loss policy (defaults where the map says nothing).
    pub loss: LossPolicy,
    /// Logical inputs by name.
    pub inputs: BTreeMap<String, HwInput>,
}

/// Inputs resolved for one channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedInputs {
    /// The video device, when the profile's video input is a device.
    pub video: Option<VideoDevice>,
    /// The audio device, when the profile's audio input is a device; `channels` are already
    /// the device channels feeding each output channel (profile channel_map applied).
    pub audio: Option<AudioDevice>,
}

fn secs(path: &Path, field: &str, v: Option<f64>, default: Duration) -> Result<Duration, HwError> {
    match v {
        None => Ok(default),
        Some(s) if s.is_finite() && (0.0..=3600.0).contains(&s) => Ok(Duration::from_secs_f64(s)),
        Some(s) => Err(HwError::Invalid {
            path: path.to_path_buf(),
            reason: format!("input_loss.{field} = {s}: seconds between 0 and 3600"),
        }),
    }
}

fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl HwMap {
    /// Reads and checks a map file.
    pub fn load(path: &Path) -> Result<HwMap, HwError> {
        let text = std::fs::read_to_string(path).map_err(|source| HwError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        HwMap::parse(&text, path)
    }

    /// Parses and checks map text; `path` names it in errors (relative slate paths resolve
    /// against its directory).
    pub fn parse(text: &str, path: &Path) -> Result<HwMap, HwError> {
        let invalid = |reason: String| HwError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let file: MapFile = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let def = LossPolicy::default();
        let loss = match &file.input_loss {
            None => def,
            Some(l) => LossPolicy {
                repeat_for: secs(path, "repeat_for", l.repeat_for, def.repeat_for)?,
                black_for: secs(path, "black_for", l.black_for, def.black_for)?,
                slate: l.slate.as_ref().map(|s| match path.parent() {
                    Some(dir) if s.is_relative() => dir.join(s),
                    _ => s.clone(),
                }),
                no_signal_after: secs(
                    path,
                    "no_signal_after",
                    l.no_signal_after,
                    def.no_signal_after,
                )?
                .max(Duration::from_millis(20)),
                reopen_initial: def.reopen_initial,
                reopen_max: secs(path, "reopen_max", l.reopen_max, def.reopen_max)?,
            },
        };
        let mut inputs = BTreeMap::new();
        for (name, sec) in file.input {
            if !valid_name(&name) {
                return Err(invalid(format!(
                    "input \"{name}\": names are 1–32 characters from A-Z a-z 0-9 _ -"
                )));
            }
            if sec.video.is_none() && sec.audio.is_none() {
                return Err(invalid(format!(
                    "input \"{name}\" has neither video nor audio"
                )));
            }
            let video = match sec.video {
                Some(v) => {
                    if !v.device.is_absolute() {
                        return Err(invalid(format!(
                            "input.{name}.video.device = \"{}\": use an absolute device path",
                            v.device.display()
                        )));
                    }
                    Some(VideoDevice {
                        input: name.clone(),
                        path: v.device,
                        card_input: v.card_input,
                        standard: v.standard,
                    })
                }
                None => None,
            };
            let audio = match sec.audio {
                Some(a) => {
                    if a.alsa.trim().is_empty() {
                        return Err(invalid(format!("input.{name}.audio.alsa is empty")));
                    }
                    if a.channels.is_empty() || a.channels.len() > 64 {
                        return Err(invalid(format!(
                            "input.{name}.audio.channels: list 1 to 64 device channels"
                        )));
                    }
                    if a.channels.iter().any(|&c| c == 0 || c > 64) {
                        return Err(invalid(format!(
                            "input.{name}.audio.channels: channels are numbered from 1 to 64"
                        )));
                    }
                    Some(AudioDevice {
                        input: name.clone(),
                        alsa: a.alsa,
                        channels: a.channels,
                    })
                }
                None => None,
            };
            inputs.insert(name, HwInput { video, audio });
        }
        Ok(HwMap {
            path: path.to_path_buf(),
            model: file.box_.model,
            description: file.box_.description,
            loss,
            inputs,
        })
    }

    fn names_with(&self, kind: &str) -> String {
        let names: Vec<&str> = self
            .inputs
            .iter()
            .filter(|(_, i)| match kind {
                "video" => i.video.is_some(),
                _ => i.audio.is_some(),
            })
            .map(|(n, _)| n.as_str())
            .collect();
        if names.is_empty() {
            "none".into()
        } else {
            names.join(", ")
        }
    }
}

/// Resolves the plan's device inputs against the box's map; refuses clearly when the box has
/// no such input (or not of that kind), or too few audio channels for the channel map.
pub fn resolve(plan: &Plan, map: &HwMap) -> Result<ResolvedInputs, HwError> {
    let missing = |input: &str, kind: &'static str| HwError::MissingInput {
        path: map.path.clone(),
        model: map.model.clone(),
        input: input.to_owned(),
        kind,
        available: map.names_with(kind),
    };
    let video = match &plan.video_input {
        VideoInput::Device { input } => Some(
            map.inputs
                .get(input)
                .and_then(|i| i.video.clone())
                .ok_or_else(|| missing(input, "video"))?,
        ),
        _ => None,
    };
    let audio = match &plan.audio_input {
        AudioInput::Device { input } => {
            let dev = map
                .inputs
                .get(input)
                .and_then(|i| i.audio.clone())
                .ok_or_else(|| missing(input, "audio"))?;
            let mut channels = Vec::with_capacity(plan.audio.channel_map.len());
            for &c in &plan.audio.channel_map {
                let Some(&d) = dev.channels.get(usize::from(c).wrapping_sub(1)) else {
                    return Err(HwError::Channel {
                        path: map.path.clone(),
                        input: input.clone(),
                        channels: dev.channels.len(),
                        wanted: c,
                    });
                };
                channels.push(d);
            }
            Some(AudioDevice { channels, ..dev })
        }
        _ => None,
    };
    Ok(ResolvedInputs { video, audio })
}
