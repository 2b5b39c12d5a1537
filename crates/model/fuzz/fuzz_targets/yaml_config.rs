//! Any text read as a configuration file (the YAML loader, either way of reporting unknown
//! fields), then checked and planned, must never panic; and a valid configuration must always
//! give a plan, for a node the files describe and for one they do not.
#![no_main]

use libfuzzer_sys::fuzz_target;
use model::file::{UnknownFields, load_str_with};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, bytes)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let unknown = if flags & 1 == 0 {
        UnknownFields::Error
    } else {
        UnknownFields::Warn
    };
    let loaded = load_str_with(text, None, unknown);
    let checked = model::validate(&loaded.resources);
    // Every diagnostic prints, and Debug never fails.
    for d in loaded.diagnostics.iter().chain(&checked.diagnostics) {
        let _ = d.to_string();
    }
    let _ = format!("{:?}", loaded.resources);
    if let Some(world) = checked.world {
        let nodes = world.nodes.keys().next().cloned();
        for node in nodes.iter().map(String::as_str).chain(["node-a"]) {
            let plan = model::plan(&world, node);
            let _ = plan.summary().to_string();
            for s in &plan.skipped {
                let _ = s.to_string();
            }
        }
    }
});
