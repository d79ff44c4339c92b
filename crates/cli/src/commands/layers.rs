//! `put`, `set`, `unset`, `delete`, `get`, `layers`: one layer at a time.

use std::io::Read;

use anyhow::{Context as _, Result, bail};
use confstrata_core::format::{self};
use confstrata_core::{Limits, Op};
use serde_json::{Value, json};

use crate::args::{DeleteArgs, GetArgs, LayersArgs, PutArgs, SetArgs, UnsetArgs};
use crate::input::{
    at_of, key_path, layer_path, ns, parse_value, pick_format, read_input, split_pair,
};
use crate::output::{cell, document, structured};

use super::Ctx;

pub(super) fn put(ctx: &Ctx, args: PutArgs) -> Result<()> {
    let PutArgs {
        namespace,
        layer,
        file,
        format,
        write,
    } = args;
    let (bytes, name) = read_input(&file)?;
    let fmt = pick_format(format.as_deref(), &name)?;
    let document = format::parse(&bytes, fmt, &name, &Limits::default())?;
    ctx.commit_ops(
        vec![Op::Put {
            namespace: ns(&namespace)?,
            layer: layer_path(&layer)?,
            document,
            expect_revision: write.expect_revision,
        }],
        &write,
    )
}

pub(super) fn set(ctx: &Ctx, args: SetArgs) -> Result<()> {
    let SetArgs {
        namespace,
        layer,
        pairs,
        string,
        secret,
        write,
    } = args;
    let (namespace, layer) = (ns(&namespace)?, layer_path(&layer)?);
    let mut entries = Vec::new();
    let mut stdin_used = false;
    for pair in &pairs {
        let (k, v) = split_pair(pair)?;
        let from_stdin;
        let v = if secret && v == "-" {
            if stdin_used {
                bail!("only one VALUE can be read from stdin");
            }
            stdin_used = true;
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the secret value from stdin")?;
            from_stdin = text.trim_end_matches(['\n', '\r']).to_owned();
            from_stdin.as_str()
        } else {
            v
        };
        let value = if string {
            Value::String(v.to_owned())
        } else {
            parse_value(v)
        };
        entries.push((key_path(k)?, value, secret));
    }
    let ops = Op::set_keys(&namespace, &layer, entries, write.expect_revision);
    ctx.commit_ops(ops, &write)
}

pub(super) fn unset(ctx: &Ctx, args: UnsetArgs) -> Result<()> {
    let UnsetArgs {
        namespace,
        layer,
        keys,
        write,
    } = args;
    let (namespace, layer) = (ns(&namespace)?, layer_path(&layer)?);
    let keys = keys
        .iter()
        .map(|k| key_path(k))
        .collect::<Result<Vec<_>>>()?;
    let ops = Op::unset_keys(&namespace, &layer, keys, write.expect_revision);
    ctx.commit_ops(ops, &write)
}

pub(super) fn delete(ctx: &Ctx, args: DeleteArgs) -> Result<()> {
    let DeleteArgs {
        namespace,
        layer,
        write,
    } = args;
    ctx.commit_ops(
        vec![Op::Delete {
            namespace: ns(&namespace)?,
            layer: layer_path(&layer)?,
            expect_revision: write.expect_revision,
        }],
        &write,
    )
}

pub(super) fn get_layer(ctx: &Ctx, args: GetArgs) -> Result<()> {
    let GetArgs {
        namespace,
        layer,
        at,
    } = args;
    let r = ctx
        .backend
        .layer(&ns(&namespace)?, &layer_path(&layer)?, at_of(&at)?)?;
    document(&r.document, ctx.output)
}

pub(super) fn layers(ctx: &Ctx, args: LayersArgs) -> Result<()> {
    let LayersArgs { namespace, at } = args;
    let layers = ctx.backend.layers(&ns(&namespace)?, at_of(&at)?)?;
    let list: Vec<Value> = layers
        .iter()
        .map(|l| {
            json!({"layer": l.layer, "revision": l.revision,
                "keys": confstrata_core::doc::leaves(&l.document).len(),
                "sealed_keys": l.sealed_keys})
        })
        .collect();
    structured(
        &list,
        ctx.output,
        &["LAYER", "REVISION", "KEYS", "SEALED"],
        || {
            list.iter()
                .map(|l| {
                    vec![
                        cell(&l["layer"]),
                        cell(&l["revision"]),
                        cell(&l["keys"]),
                        l["sealed_keys"].as_array().map_or(0, Vec::len).to_string(),
                    ]
                })
                .collect()
        },
    )
}
