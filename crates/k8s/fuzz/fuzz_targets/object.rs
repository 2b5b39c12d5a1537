//! Any JSON an API server could send as an object of any kind herald watches, read the way
//! the watches read it, then checked and planned beside a valid configuration, must never
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, json)) = data.split_first() else {
        return;
    };
    k8s::fuzzing::read_check_and_plan(kind, json);
});
