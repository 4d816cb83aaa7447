//! A client's side of the authentication exchange: see `fuzz/harness/auth.rs`.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../harness/frontend.rs"]
mod frontend;

#[path = "../harness/auth.rs"]
mod auth;

#[global_allocator]
static ALLOC: frontend::TrackingAlloc = frontend::TrackingAlloc;

fuzz_target!(|data: &[u8]| auth::decode_auth(data));
