//! `tepui wire`: convert Mesos messages between JSON and protobuf, framed
//! or not, for inspecting what a client or a daemon sends.

use std::io::{Read, Write};

use anyhow::{Context, Result};
use bytes::BytesMut;
use clap::{Args, ValueEnum};
use prost::Message as _;
use prost_reflect::DynamicMessage;
use tepui_proto::{descriptor, json, recordio};

/// Arguments of `tepui wire`.
#[derive(Debug, Args)]
pub struct WireArgs {
    /// Full proto name of the message, e.g. mesos.v1.scheduler.Call.
    #[arg(long = "type", env = "TEPUI_WIRE_TYPE")]
    type_name: String,
    /// Encoding read from standard input.
    #[arg(long, value_enum, env = "TEPUI_WIRE_FROM")]
    from: Encoding,
    /// Encoding written to standard output.
    #[arg(long, value_enum, env = "TEPUI_WIRE_TO")]
    to: Encoding,
    /// Input and output are RecordIO streams of messages (as on
    /// /api/v1 event streams) rather than one message.
    #[arg(long, env = "TEPUI_WIRE_RECORDIO")]
    recordio: bool,
}

/// A message encoding of the Mesos v1 HTTP APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Encoding {
    /// application/json, as Mesos writes it.
    Json,
    /// application/x-protobuf.
    Protobuf,
}

/// Reads standard input, converts, writes standard output.
pub fn run(args: &WireArgs) -> Result<()> {
    let desc = descriptor::by_name(&args.type_name)?;
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .context("reading standard input")?;

    let records = if args.recordio {
        recordio::decode_all(&input, recordio::DEFAULT_MAX_RECORD_LEN)?
            .into_iter()
            .map(|b| b.to_vec())
            .collect()
    } else {
        vec![input]
    };

    let mut out = BytesMut::new();
    for (i, record) in records.iter().enumerate() {
        let message = decode(&desc, args.from, record)
            .with_context(|| format!("decoding record {i} as {}", args.from.name()))?;
        let encoded = match args.to {
            Encoding::Json => json::dynamic_to_value(&message).to_string().into_bytes(),
            Encoding::Protobuf => message.encode_to_vec(),
        };
        if args.recordio {
            recordio::encode(&encoded, &mut out);
        } else {
            out.extend_from_slice(&encoded);
            if args.to == Encoding::Json {
                out.extend_from_slice(b"\n");
            }
        }
    }
    std::io::stdout()
        .write_all(&out)
        .context("writing standard output")
}

impl Encoding {
    fn name(self) -> &'static str {
        match self {
            Encoding::Json => "JSON",
            Encoding::Protobuf => "protobuf",
        }
    }
}

fn decode(
    desc: &prost_reflect::MessageDescriptor,
    from: Encoding,
    bytes: &[u8],
) -> Result<DynamicMessage> {
    Ok(match from {
        Encoding::Json => {
            let value: serde_json::Value =
                serde_json::from_slice(bytes).map_err(json::JsonError::Syntax)?;
            json::dynamic_from_value(desc.clone(), &value)?
        }
        Encoding::Protobuf => {
            let message = DynamicMessage::decode(desc.clone(), bytes)?;
            tepui_proto::required::check(desc.full_name(), bytes)?;
            message
        }
    })
}
