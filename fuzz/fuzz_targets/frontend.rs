//! The startup packet, then frontend messages: see `fuzz/harness/frontend.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/frontend.rs"]
mod frontend;

#[global_allocator]
static ALLOC: frontend::TrackingAlloc = frontend::TrackingAlloc;

fuzz_target!(|data: &[u8]| frontend::decode_frontend(data));
