#!/bin/sh
# A recording stand-in for macOS's networksetup, for the macOS backend's
# tests on any Unix. It answers the proxy commands in networksetup's own
# output formats and keeps each service's settings as files under
# state/svc/NAME/ next to this script. state/services lists the services as
# -listallnetworkservices prints them (a leading * marks a disabled one).
# Every call is appended to `calls`, one line per call, arguments ended by
# tabs. POSIX sh only: macOS's /bin/sh is an old bash.

here=$(cd "$(dirname "$0")" && pwd)
state="$here/state"

for arg in "$@"; do printf '%s\t' "$arg"; done >>"$here/calls"
printf '\n' >>"$here/calls"

cmd=$1
service=$2

if [ "$cmd" = -listallnetworkservices ]; then
    echo "An asterisk (*) denotes that a network service is disabled."
    cat "$state/services"
    exit 0
fi

if ! grep -Fxq -e "$service" -e "*$service" "$state/services"; then
    echo "$service is not a recognized network service."
    echo "** Error: The parameters were not valid."
    exit 4
fi

# Service names may hold "/" ("USB 10/100/1000 LAN").
dir="$state/svc/$(printf '%s' "$service" | sed 's#/#%2F#g')"
mkdir -p "$dir"

# Tests make one command fail on a service by naming it in its `refuse` file.
if [ -f "$dir/refuse" ] && [ "$cmd" = "$(cat "$dir/refuse")" ]; then
    echo "** Error: The operation couldn't be completed."
    exit 14
fi

value() { # FIELD DEFAULT
    if [ -f "$dir/$1" ]; then cat "$dir/$1"; else printf '%s' "$2"; fi
}

invalid() {
    echo "** Error: The parameters were not valid."
    exit 4
}

yes_no() { # on|off -> Yes|No, into FIELD
    case $1 in
    on) printf Yes >"$dir/$2" ;;
    off) printf No >"$dir/$2" ;;
    *) invalid ;;
    esac
}

show_proxy() { # KIND
    printf 'Enabled: %s\nServer: %s\nPort: %s\nAuthenticated Proxy Enabled: 0\n' \
        "$(value "$1.enabled" No)" "$(value "$1.server" '')" "$(value "$1.port" 0)"
}

set_proxy() { # KIND SERVER PORT: like networksetup, this turns it on
    [ $# -ge 3 ] || invalid
    case $3 in '' | *[!0-9]*) invalid ;; esac
    printf '%s' "$2" >"$dir/$1.server"
    printf '%s' "$3" >"$dir/$1.port"
    printf Yes >"$dir/$1.enabled"
}

case $cmd in
-getwebproxy) show_proxy web ;;
-getsecurewebproxy) show_proxy secure ;;
-getsocksfirewallproxy) show_proxy socks ;;
-setwebproxy) set_proxy web "$3" "$4" ;;
-setsecurewebproxy) set_proxy secure "$3" "$4" ;;
-setsocksfirewallproxy) set_proxy socks "$3" "$4" ;;
-setwebproxystate) yes_no "$3" web.enabled ;;
-setsecurewebproxystate) yes_no "$3" secure.enabled ;;
-setsocksfirewallproxystate) yes_no "$3" socks.enabled ;;
-getautoproxyurl)
    printf 'URL: %s\nEnabled: %s\n' "$(value pac.url '(null)')" "$(value pac.enabled No)"
    ;;
-setautoproxyurl)
    [ $# -ge 3 ] || invalid
    printf '%s' "$3" >"$dir/pac.url"
    printf Yes >"$dir/pac.enabled"
    ;;
-setautoproxystate) yes_no "$3" pac.enabled ;;
-getproxyautodiscovery)
    printf 'Auto Proxy Discovery: %s\n' "$(value discovery Off)"
    ;;
-setproxyautodiscovery)
    case $3 in
    on) printf On >"$dir/discovery" ;;
    off) printf Off >"$dir/discovery" ;;
    *) invalid ;;
    esac
    ;;
-getproxybypassdomains)
    if [ -s "$dir/bypass" ]; then
        cat "$dir/bypass"
    else
        echo "There aren't any bypass domains set on $service."
    fi
    ;;
-setproxybypassdomains)
    shift 2
    [ $# -ge 1 ] || invalid
    if [ "$1" = Empty ]; then
        : >"$dir/bypass"
    else
        printf '%s\n' "$@" >"$dir/bypass"
    fi
    ;;
*)
    echo "** Error: unknown command $cmd"
    exit 1
    ;;
esac
