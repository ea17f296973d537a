//! Completions that know the running daemon (issue 14): `berth completion bash` prints
//! clap's script plus a layer that completes container ids, task ids, image names and
//! namespaces by calling the hidden `berth __complete KIND`, which asks berthd and prints
//! one candidate per line, or nothing at all when berthd is down, so a completion never
//! shows an error. Other shells get clap's static script (commands and flags).

use std::io::Write;

use clap::ValueEnum;
use clap_complete::Shell;
use serde_json::{json, Value};

use super::Ctx;

/// What `__complete` lists.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Kind {
    Containers,
    Tasks,
    Images,
    Namespaces,
    Networks,
}

/// Prints the candidates of `kind`; any failure (daemon down, refused) prints nothing.
pub fn candidates(ctx: &Ctx, kind: Kind) -> anyhow::Result<()> {
    let names = list(ctx, kind).unwrap_or_default();
    let mut out = std::io::stdout().lock();
    for n in names {
        if writeln!(out, "{n}").is_err() {
            break;
        }
    }
    Ok(())
}

fn list(ctx: &Ctx, kind: Kind) -> anyhow::Result<Vec<String>> {
    let mut client = ctx.connect()?;
    let strings = |v: &Value, array: &str, field: &str| -> Vec<String> {
        v[array]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x[field].as_str().map(str::to_owned))
            .collect()
    };
    Ok(match kind {
        Kind::Containers => super::containers::list_all(&mut client, json!({}))?
            .iter()
            .filter_map(|c| c["id"].as_str().map(str::to_owned))
            .collect(),
        Kind::Tasks => strings(
            &client.call("tasks.list", json!({}))?,
            "tasks",
            "container_id",
        ),
        Kind::Images => strings(&client.call("images.list", json!({}))?, "images", "name"),
        Kind::Namespaces => strings(
            &client.call("namespaces.list", json!({}))?,
            "namespaces",
            "name",
        ),
        Kind::Networks => strings(
            &client.call("networks.list", json!({}))?,
            "networks",
            "name",
        ),
    })
}

/// Writes the completion script for `shell`.
pub fn script(shell: Shell, cmd: &mut clap::Command) {
    let mut out = std::io::stdout();
    clap_complete::generate(shell, cmd, "berth", &mut out);
    if shell == Shell::Bash {
        let _ = out.write_all(BASH.as_bytes());
    }
}

/// Which words take what: the command path (words that are not options) decides.
const BASH: &str = r#"
# berth: ids and names from the running daemon (`berth __complete KIND`), else clap's.
_berth_kind() {
    local i w path=()
    _berth_k="" _berth_opts=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${COMP_WORDS[i]}"
        case "$w" in
            -n|--namespace|--socket) _berth_opts+=("$w" "${COMP_WORDS[i+1]}"); ((i++)) ;;
            -*) ;;
            *) path+=("$w") ;;
        esac
    done
    case "${COMP_WORDS[COMP_CWORD-1]}" in
        -n|--namespace) _berth_k=namespaces; return ;;
        --network) _berth_k=networks; return ;;
    esac
    case "${path[0]}" in
        rm|stop|start|restart|logs|attach|inspect) _berth_k=containers; return ;;
        run) [ ${#path[@]} -eq 1 ] && _berth_k=images; return ;;
    esac
    case "${path[0]} ${path[1]}" in
        "containers rm"|"containers info"|"containers label"|"containers update"|\
        "c rm"|"c info"|"c label"|"c update"|"tasks start"|"t start") _berth_k=containers ;;
        "tasks kill"|"tasks rm"|"tasks exec"|"tasks ps"|"tasks pause"|"tasks resume"|\
        "tasks metrics"|"tasks wait"|"tasks attach"|"t kill"|"t rm"|"t exec"|"t ps"|\
        "t pause"|"t resume"|"t metrics"|"t wait"|"t attach") _berth_k=tasks ;;
        "images rm"|"images inspect"|"images export"|"images push"|"images tag"|\
        "i rm"|"i inspect"|"i export"|"i push"|"i tag") _berth_k=images ;;
        "namespaces rm"|"ns rm") _berth_k=namespaces ;;
        "network rm"|"network inspect"|"net rm"|"net inspect") _berth_k=networks ;;
    esac
}

_berth_dynamic() {
    local cur="${COMP_WORDS[COMP_CWORD]}"
    _berth_k=""
    [[ "$cur" != -* ]] && _berth_kind
    if [ -n "$_berth_k" ]; then
        local names
        names="$("${COMP_WORDS[0]}" "${_berth_opts[@]}" __complete "$_berth_k" 2>/dev/null)"
        COMPREPLY=($(compgen -W "$names" -- "$cur"))
        [ ${#COMPREPLY[@]} -gt 0 ] && return 0
    fi
    _berth "$@"
}

complete -F _berth_dynamic -o bashdefault -o default berth
"#;
