//! Runs the chart's Argo CD health check as Argo CD does (util/lua in argo-cd): Lua 5.1 with only
//! the base, table and package libraries and a safe `os` (time and date), the object as the global
//! `obj`, and the returned table's `status` and `message` as the result. No `string`, no `math`.

use mlua::{Function, Lua, LuaOptions, StdLib, Table, Value};

/// The script users paste into `resource.customizations.health.apitoken.dev_ApiToken`.
pub const SCRIPT: &str = include_str!("../../charts/apitoken-operator/argocd/health.lua");

#[derive(Debug, PartialEq, Eq)]
pub struct Health {
    pub status: String,
    pub message: String,
}

/// A Lua state with exactly the libraries Argo CD gives custom health checks.
pub fn argo_lua() -> Lua {
    let lua = Lua::new_with(
        StdLib::TABLE | StdLib::PACKAGE | StdLib::OS,
        LuaOptions::default(),
    )
    .expect("lua state");
    let globals = lua.globals();
    let os: Table = globals.get("os").unwrap();
    let safe = lua.create_table().unwrap();
    for name in ["time", "date"] {
        safe.set(name, os.get::<Function>(name).unwrap()).unwrap();
    }
    globals.set("os", &safe).unwrap();
    let package: Table = globals.get("package").unwrap();
    let loaded: Table = package.get("loaded").unwrap();
    loaded.set("os", &safe).unwrap();
    lua
}

/// The health Argo CD would show for `object` (as the API server returns it).
pub fn health(object: &serde_json::Value) -> Result<Health, mlua::Error> {
    let lua = argo_lua();
    lua.globals().set("obj", to_lua(&lua, object)?)?;
    let result: Table = lua.load(SCRIPT).set_name("health.lua").eval()?;
    Ok(Health {
        status: result.get("status")?,
        message: result.get::<Option<String>>("message")?.unwrap_or_default(),
    })
}

/// JSON to Lua as Argo CD decodes objects: numbers are numbers, null is nil, arrays 1-based.
fn to_lua(lua: &Lua, value: &serde_json::Value) -> mlua::Result<Value> {
    use serde_json::Value as J;
    Ok(match value {
        J::Null => Value::Nil,
        J::Bool(b) => Value::Boolean(*b),
        J::Number(n) => Value::Number(n.as_f64().expect("a finite number")),
        J::String(s) => Value::String(lua.create_string(s)?),
        J::Array(items) => {
            let table = lua.create_table()?;
            for item in items {
                table.push(to_lua(lua, item)?)?;
            }
            Value::Table(table)
        }
        J::Object(map) => {
            let table = lua.create_table()?;
            for (k, v) in map {
                table.set(k.as_str(), to_lua(lua, v)?)?;
            }
            Value::Table(table)
        }
    })
}
