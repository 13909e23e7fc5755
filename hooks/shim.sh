#!/bin/sh
# bulwark-shim: installed by `bulwark install`; `bulwark uninstall` restores what was here.
# Hooks fail closed: if bulwark-hook is gone, this hook refuses instead of passing.
@FAST_PATH@BULWARK_HOOK=@HOOK_BINARY@
if [ ! -x "$BULWARK_HOOK" ]; then
    echo "error: bulwark-hook is missing at $BULWARK_HOOK, so this @HOOK_NAME@ is refused (hooks fail closed)" >&2
    echo "hint: reinstall bulwark and run \`bulwark install\` again, or remove its hooks with \`bulwark uninstall --repo <this repository>\`" >&2
    exit 1
fi
@LONG_READ_AHEAD@# `--`: what git passes (a remote name, a ref) is never read as a flag of bulwark-hook.
exec "$BULWARK_HOOK" @CHAIN@@READ_AHEAD@@HOOK_NAME@ -- "$@"
