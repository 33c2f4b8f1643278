//! ArgoCD's health checks and actions for Ferry's resources, in argo-cd's own
//! `resource_customizations/<group>/<Kind>/` layout, run by a real Lua interpreter (Debian's
//! lua5.4) over every case of their `health_test.yaml` and `actions/action_test.yaml`, the way
//! argo-cd's own tests read those files; and the argocd-cm snippet kept equal to the scripts.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn argocd_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/argocd")
}

fn customizations() -> PathBuf {
    argocd_dir().join("resource_customizations/ferry.dev")
}

const KINDS: [&str; 2] = ["MigrationJob", "MigrationSource"];

/// The time `os.date` gives the scripts under test (the restart action stamps it).
const CLOCK: &str = "2026-12-07T10:30:00Z";

fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A Lua table constructor for a JSON value; nulls are left out, as argo-cd's conversion
/// leaves them nil.
fn lua_literal(value: &Value) -> String {
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => lua_string(s),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(lua_literal).collect();
            format!("{{{}}}", items.join(", "))
        }
        Value::Object(map) => {
            let fields = map.iter().filter(|(_, v)| !v.is_null());
            let fields: Vec<String> =
                fields.map(|(k, v)| format!("[{}] = {}", lua_string(k), lua_literal(v))).collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

fn lua_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\{:03}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Lua that prints a value as JSON (a table with keys 1..n is an array).
const TO_JSON: &str = r#"
local function to_json(v)
  local t = type(v)
  if t == "nil" then return "null" end
  if t == "boolean" then return tostring(v) end
  if t == "number" then
    if math.type(v) == "integer" then return string.format("%d", v) end
    return string.format("%.17g", v)
  end
  if t == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
  end
  local n = #v
  local count = 0
  for _ in pairs(v) do count = count + 1 end
  local parts = {}
  if n > 0 and n == count then
    for i = 1, n do parts[i] = to_json(v[i]) end
    return "[" .. table.concat(parts, ",") .. "]"
  end
  for k, item in pairs(v) do
    parts[#parts + 1] = to_json(tostring(k)) .. ":" .. to_json(item)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end
"#;

/// Runs `script` with the global `obj` set to `object` (argo-cd's calling convention) and the
/// clock fixed at [`CLOCK`]; returns what the script returns, as JSON.
fn run_lua(script: &Path, object: &Value) -> Value {
    let program = format!(
        "{TO_JSON}\nlocal os_ = setmetatable({{ date = function() return {clock} end }}, \
         {{ __index = os }})\nlocal env = setmetatable({{ obj = {obj}, os = os_ }}, {{ __index = _G }})\n\
         local chunk = assert(loadfile({path}, \"t\", env))\nio.write(to_json(chunk()))\n",
        clock = lua_string(CLOCK),
        obj = lua_literal(object),
        path = lua_string(&script.display().to_string()),
    );
    let output = Command::new("lua5.4")
        .args(["-e", &program])
        .output()
        .expect("lua5.4 runs (installed by dev/setup.sh)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{} failed: {stdout}{}",
        script.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{}: {e}: {stdout}", script.display()))
}

/// Every case of each kind's health_test.yaml: the status and message health.lua returns.
#[test]
fn health_checks_pass_every_testdata_case() {
    let mut ran = 0;
    let mut failures = Vec::new();
    for kind in KINDS {
        let dir = customizations().join(kind);
        let tests = read_yaml(&dir.join("health_test.yaml"));
        for case in tests["tests"].as_array().expect("tests") {
            let input = case["inputPath"].as_str().expect("inputPath");
            let got = run_lua(&dir.join("health.lua"), &read_yaml(&dir.join(input)));
            let want = &case["healthStatus"];
            if got["status"] != want["status"] || got["message"] != want["message"] {
                failures.push(format!("{kind} {input}: got {got}, want {want}"));
            }
            ran += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(ran >= 15, "only {ran} cases");
}

/// The cases argo-cd users look for are covered, per kind: deletion, and for a job the
/// automatic retry, the failure for good, pause and completion.
#[test]
fn health_tests_cover_deletion_back_off_failure_pause_and_completion() {
    let statuses = |kind: &str| -> Vec<(String, String)> {
        let dir = customizations().join(kind);
        let tests = read_yaml(&dir.join("health_test.yaml"));
        let cases = tests["tests"].as_array().expect("tests").iter();
        cases
            .map(|case| {
                let input = read_yaml(&dir.join(case["inputPath"].as_str().expect("inputPath")));
                let fact = if !input["metadata"]["deletionTimestamp"].is_null() {
                    "terminating".to_string()
                } else {
                    let reason = input["status"]["conditions"]
                        .as_array()
                        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                        .map(|c| c["reason"].as_str().unwrap_or_default().to_string());
                    reason.unwrap_or_default()
                };
                (fact, case["healthStatus"]["status"].as_str().unwrap_or_default().to_string())
            })
            .collect()
    };
    let job = statuses("MigrationJob");
    for (fact, status) in [
        ("terminating", "Progressing"),
        ("BackOff", "Progressing"),
        ("Failed", "Degraded"),
        ("Paused", "Suspended"),
        ("Completed", "Healthy"),
    ] {
        assert!(job.contains(&(fact.into(), status.into())), "no {fact} -> {status}: {job:?}");
    }
    let source = statuses("MigrationSource");
    assert!(source.contains(&("terminating".into(), "Progressing".into())), "{source:?}");
    assert!(source.contains(&("AuthenticationFailed".into(), "Degraded".into())), "{source:?}");
}

/// action_test.yaml: discovery.lua offers each action enabled or not as listed, and each
/// action.lua turns the input object into the expected one.
#[test]
fn job_actions_pass_every_testdata_case() {
    let dir = customizations().join("MigrationJob/actions");
    let tests = read_yaml(&dir.join("action_test.yaml"));
    let mut failures = Vec::new();
    for case in tests["discoveryTests"].as_array().expect("discoveryTests") {
        let input = case["inputPath"].as_str().expect("inputPath");
        let got = run_lua(&dir.join("discovery.lua"), &read_yaml(&dir.join(input)));
        for action in case["result"].as_array().expect("result") {
            let name = action["name"].as_str().expect("name");
            if got[name]["disabled"] != action["disabled"] {
                failures
                    .push(format!("discovery {input}: {name} got {}, want {action}", got[name]));
            }
        }
        let offered = got.as_object().map(|o| o.len()).unwrap_or_default();
        if offered != case["result"].as_array().map(Vec::len).unwrap_or_default() {
            failures.push(format!("discovery {input}: offers {got}"));
        }
    }
    for case in tests["actionTests"].as_array().expect("actionTests") {
        let action = case["action"].as_str().expect("action");
        let input = read_yaml(&dir.join(case["inputPath"].as_str().expect("inputPath")));
        let want = read_yaml(&dir.join(case["expectedOutputPath"].as_str().expect("output")));
        let got = run_lua(&dir.join(action).join("action.lua"), &input);
        if got != want {
            failures.push(format!("action {action}: got {got}\nwant {want}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// argocd-cm.yaml carries every script verbatim under the keys ArgoCD reads.
#[test]
fn argocd_cm_carries_the_scripts_verbatim() {
    let read = |path: PathBuf| std::fs::read_to_string(&path).expect("script");
    let cm = read_yaml(&argocd_dir().join("argocd-cm.yaml"));
    let data = &cm["data"];
    let stale = "argocd-cm.yaml is out of date with resource_customizations/: copy the script";
    for kind in KINDS {
        let key = format!("resource.customizations.health.ferry.dev_{kind}");
        let script = read(customizations().join(kind).join("health.lua"));
        assert_eq!(data[&key].as_str(), Some(script.as_str()), "{key}: {stale}");
    }
    let key = "resource.customizations.actions.ferry.dev_MigrationJob";
    let actions: Value = serde_yaml::from_str(data[key].as_str().expect("actions")).expect("YAML");
    let dir = customizations().join("MigrationJob/actions");
    assert_eq!(actions["discovery.lua"], read(dir.join("discovery.lua")).as_str(), "{stale}");
    let definitions = actions["definitions"].as_array().expect("definitions");
    let mut names: Vec<&str> = definitions.iter().filter_map(|d| d["name"].as_str()).collect();
    names.sort();
    assert_eq!(names, ["pause", "restart", "resume"]);
    for definition in definitions {
        let name = definition["name"].as_str().expect("name");
        let script = read(dir.join(name).join("action.lua"));
        assert_eq!(definition["action.lua"], script.as_str(), "{name}: {stale}");
    }
}
