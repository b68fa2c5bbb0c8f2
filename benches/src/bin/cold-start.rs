//! `cold-start`: time from exec to the first handled invoke, per function
//! binary, under cargo-lambda's runtime API (`cargo lambda watch
//! --only-lambda-apis`, started by `infra/bench.sh`).
//!
//! For each run: an invoke is queued at the runtime API, then the binary is
//! exec'd with the Lambda environment pointing at it; the clock runs from the
//! spawn until the invoke's answer comes back (process start, configuration,
//! client set-up, `GET /next`, the handler, `POST /response`). The process is
//! then killed, so every run is a cold start.
//!
//! Usage: `cold-start --port P --runs N --out FILE NAME=BINARY[:KIND] ...`
//! where KIND is the invoke (below). The stack's environment is inherited.

use std::time::{Duration, Instant};

use leads_benches::percentile;
use serde_json::json;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// What to invoke each function with: a cheap, valid call that touches the
/// handler but (mostly) not the emulator.
fn invoke(name: &str) -> (&'static str, String, serde_json::Value) {
    match name {
        // lambda_http functions: through cargo-lambda's function URL route.
        "webhook-intake" => ("GET", "/lambda-url/_/webhooks/unknown".into(), json!(null)),
        "api" => ("GET", "/lambda-url/_/leads/L0".into(), json!(null)),
        // SQS consumers: an empty batch.
        "lead-router" | "notifier" => (
            "POST",
            "/2015-03-31/functions/_/invocations".into(),
            json!({"Records": []}),
        ),
        "sla-sweeper" => (
            "POST",
            "/2015-03-31/functions/_/invocations".into(),
            json!({"version": "0", "id": "cold", "detail-type": "Scheduled Event", "source": "aws.events",
                   "account": "123456789012", "time": "2026-11-24T00:00:00Z", "region": "us-east-1",
                   "resources": [], "detail": {}}),
        ),
        "brand-ranking" => (
            "POST",
            "/2015-03-31/functions/_/invocations".into(),
            json!({"brand_id": "no-such-brand", "date": "2026-11-23"}),
        ),
        _ => (
            "POST",
            "/2015-03-31/functions/_/invocations".into(),
            json!({"hello": "world"}),
        ),
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut port = 0u16;
    let mut runs = 10usize;
    let mut out = None;
    let mut binaries = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => port = args.next().ok_or("--port P")?.parse()?,
            "--runs" => runs = args.next().ok_or("--runs N")?.parse()?,
            "--out" => out = args.next(),
            pair => {
                let (name, path) = pair.split_once('=').ok_or("NAME=BINARY")?;
                binaries.push((name.to_string(), path.to_string()));
            }
        }
    }
    if port == 0 || binaries.is_empty() {
        return Err("usage: cold-start --port P [--runs N] [--out FILE] NAME=BINARY ...".into());
    }
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()?;
    let base = format!("http://127.0.0.1:{port}");
    let mut results = serde_json::Map::new();
    for (name, path) in &binaries {
        let (method, invoke_path, payload) = invoke(name);
        let mut times = Vec::new();
        let mut status = 0;
        for _ in 0..runs {
            let url = format!("{base}{invoke_path}");
            let request = if method == "GET" {
                http.get(url)
            } else {
                http.post(url).json(&payload)
            };
            let pending = tokio::spawn(request.send());
            // Let the invoke reach the runtime API's queue first.
            tokio::time::sleep(Duration::from_millis(150)).await;
            let started = Instant::now();
            let mut child = tokio::process::Command::new(path)
                .env("AWS_LAMBDA_RUNTIME_API", format!("{base}/.rt"))
                .env("AWS_LAMBDA_FUNCTION_NAME", "_")
                .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
                .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
                .env("RUST_LOG", "warn")
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()?;
            let response = pending.await??;
            let elapsed = started.elapsed();
            status = response.status().as_u16();
            let _ = response.bytes().await;
            child.kill().await?;
            times.push(elapsed.as_secs_f64() * 1e3);
        }
        times.sort_by(f64::total_cmp);
        let size = std::fs::metadata(path)?.len();
        let p50 = percentile(&times, 50.0);
        println!(
            "{name:<16} cold start p50 {p50:>7.2} ms  min {:>7.2}  max {:>7.2}  ({runs} runs, invoke answered {status})  binary {:.2} MiB",
            times[0],
            times[times.len() - 1],
            size as f64 / 1048576.0
        );
        results.insert(
            name.clone(),
            json!({"runs": runs, "p50_ms": round2(p50), "min_ms": round2(times[0]),
                   "max_ms": round2(times[times.len() - 1]), "invoke_status": status,
                   "invoke": format!("{method} {invoke_path}"), "binary_bytes": size}),
        );
    }
    if let Some(path) = out {
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&serde_json::Value::Object(results))? + "\n",
        )?;
    }
    Ok(())
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
