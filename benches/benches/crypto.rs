//! Sealing and opening a value, against the bare XChaCha20-Poly1305 AEAD on
//! the same bytes in the same group.
//!
//! Run: `cargo bench -p confstrata-benches --bench crypto`
//!
//! `seal` = JSON-encode the value, draw a nonce from the OS, build the
//! associated data (namespace, layer, key path, key id), encrypt, build the
//! `{ "$sealed": ... }` table (base64). `open` = parse that table, rebuild the
//! associated data, decrypt, JSON-decode. `bare_*` = encrypt/decrypt of the
//! same JSON bytes with a fixed nonce and a fixed 40-byte associated data.

use std::hint::black_box;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use confstrata_core::{KeyPath, LayerPath, NamespaceName};
use confstrata_crypto::{Keyring, MasterKey, open_value, seal};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::Value;

fn sealing(c: &mut Criterion) {
    let mut keyring = Keyring::new(MasterKey::generate().unwrap());
    let ns: NamespaceName = "webshop".parse().unwrap();
    let layer: LayerPath = "env/prod/region/eu".parse().unwrap();
    let key: KeyPath = "db.primary.password".parse().unwrap();
    keyring.rotate(&ns).unwrap();

    let bare = XChaCha20Poly1305::new(&[7u8; 32].into());
    let nonce = XNonce::from([9u8; 24]);
    let aad = [3u8; 40];

    let mut g = c.benchmark_group("seal_open");
    for size in [64usize, 1024, 64 * 1024] {
        // A JSON string whose encoded form is `size` bytes (quotes included).
        let value = Value::String("x".repeat(size - 2));
        let plain = serde_json::to_vec(&value).unwrap();
        assert_eq!(plain.len(), size);
        g.throughput(Throughput::Bytes(size as u64));

        g.bench_with_input(BenchmarkId::new("bare_encrypt", size), &plain, |b, p| {
            b.iter(|| {
                bare.encrypt(black_box(&nonce), Payload { msg: p, aad: &aad })
                    .unwrap()
            })
        });
        g.bench_with_input(BenchmarkId::new("seal", size), &value, |b, v| {
            b.iter(|| {
                seal(&keyring, &ns, &layer, &key, black_box(v))
                    .unwrap()
                    .to_value()
            })
        });

        let ct = bare
            .encrypt(
                &nonce,
                Payload {
                    msg: &plain,
                    aad: &aad,
                },
            )
            .unwrap();
        g.bench_with_input(BenchmarkId::new("bare_decrypt", size), &ct, |b, ct| {
            b.iter(|| {
                bare.decrypt(black_box(&nonce), Payload { msg: ct, aad: &aad })
                    .unwrap()
            })
        });
        let stored = seal(&keyring, &ns, &layer, &key, &value)
            .unwrap()
            .to_value();
        g.bench_with_input(BenchmarkId::new("open", size), &stored, |b, s| {
            b.iter(|| open_value(&keyring, &ns, &layer, &key, black_box(s)).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, sealing);
criterion_main!(benches);
