#!/usr/bin/env bash
# Run Kafka (single-node KRaft), Redis and Prometheus as plain local processes.
#   deploy/services.sh up|down|status|reset [kafka|redis|prometheus ...]
# up defaults to kafka+redis; down/status/reset default to all three.
# Everything lives under build/services/ (HEARTH_SERVICES_DIR moves it: a private instance set,
# e.g. for fault tests that stop or restart a service); reset = down + delete data.
# Ports: HEARTH_KAFKA_PORT (9092), HEARTH_KAFKA_CONTROLLER_PORT (9093), HEARTH_REDIS_PORT (6379),
# HEARTH_PROMETHEUS_PORT (9090). Authentication, off unless set (read by up and status):
#   HEARTH_REDIS_PASSWORD     Redis requires it (requirepass); the checks send it (REDISCLI_AUTH)
#   HEARTH_KAFKA_SASL_PORT    adds a SASL_PLAINTEXT listener (mechanism PLAIN) on that port, next
#                             to the PLAINTEXT one, with one user HEARTH_KAFKA_SASL_USER (hearth)
#                             and password HEARTH_KAFKA_SASL_PASSWORD (required with the port)
#   HEARTH_REDIS_TLS_PORT     adds a TLS port to Redis (clients: rediss://), next to the plain one,
#                             with HEARTH_REDIS_TLS_CERT and HEARTH_REDIS_TLS_KEY (PEM files)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN=${HEARTH_SERVICES_DIR:-$ROOT/build/services}
# The Kafka jars are shared by every instance set: downloaded once.
KAFKA_LIBS=$ROOT/build/services/kafka/libs
LOGS=$RUN/logs
KAFKA_CONTROLLER_PORT=${HEARTH_KAFKA_CONTROLLER_PORT:-9093}
KAFKA_SASL_PORT=${HEARTH_KAFKA_SASL_PORT-}
KAFKA_SASL_USER=${HEARTH_KAFKA_SASL_USER:-hearth}
REDIS_PASSWORD=${HEARTH_REDIS_PASSWORD-}
declare -A PORT=([kafka]=${HEARTH_KAFKA_PORT:-9092} [redis]=${HEARTH_REDIS_PORT:-6379}
                 [prometheus]=${HEARTH_PROMETHEUS_PORT:-9090})
declare -A TIMEOUT=([kafka]=90 [redis]=15 [prometheus]=15)
declare -A MARK=([kafka]=kafka.Kafka [redis]=redis-server [prometheus]=prometheus)
export DEBIAN_FRONTEND=noninteractive

log() { echo "services: $*" >&2; }
die() { log "$*"; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Orphans are reaped by pid 1, which in some containers never happens: a zombie must count as gone.
alive() { local s; s=$(sed -n 's/^State:\s*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null) && [[ -n $s && $s != Z ]]; }

# Prints the pid of our instance of $1. The cmdline check guards against a stale pid file whose pid got reused.
our_pid() {
  local pid
  pid=$(cat "$RUN/$1.pid" 2>/dev/null) && [[ -n $pid ]] && alive "$pid" &&
    grep -qaF -- "${MARK[$1]}" "/proc/$pid/cmdline" && echo "$pid"
}

apt_install() {
  log "installing $* (apt-get)"
  { apt-get update -q && apt-get install -y -q --no-install-recommends "$@"; } >"$LOGS/apt.log" 2>&1 ||
    { tail -n 30 "$LOGS/apt.log" >&2; die "apt-get install $* failed"; }
}

# A distro package may start its own instance on our port (its postinst does when no policy-rc.d blocks it).
claim_port() { # port [init.d service]
  port_open "$1" || return 0
  if [[ -n ${2-} && -x /etc/init.d/$2 ]] && service "$2" status >/dev/null 2>&1; then
    log "port $1 is taken, stopping system service $2"
    service "$2" stop >&2 || true
    for _ in {1..20}; do port_open "$1" || return 0; sleep 0.5; done
  fi
  die "port $1 is used by another process: $(ss -ltnpH "sport = :$1" 2>/dev/null || true)"
}

# The child writes its own pid just before exec, so the pid file names the real server even if setsid forks.
# fd 9 (our lock) must not leak into the server, or the next caller would wait for it forever.
spawn() {
  local name=$1; shift
  rm -f "$RUN/$name.pid"
  echo "${PORT[$name]}" >"$RUN/$name.port"
  # shellcheck disable=SC2016  # $$ and $@ are for the inner shell
  setsid nohup bash -c 'echo $$ >"$0"; exec "$@"' "$RUN/$name.pid" "$@" \
    >"$LOGS/$name.log" 2>&1 </dev/null 9>&- &
}

kafka_ready() { port_open "${PORT[kafka]}" && grep -q 'Kafka Server started' "$LOGS/kafka.log" 2>/dev/null; }
# An empty REDISCLI_AUTH sends no AUTH; a wrong one makes the server unhealthy to us, as it should.
redis_ready() {
  [[ $(REDISCLI_AUTH=$REDIS_PASSWORD redis-cli -h 127.0.0.1 -p "${PORT[redis]}" ping 2>/dev/null) == PONG ]]
}
prometheus_ready() { curl -sf -o /dev/null "http://127.0.0.1:${PORT[prometheus]}/-/ready"; }

wait_ready() {
  local name=$1 deadline=$((SECONDS + TIMEOUT[$1])) pid
  until "${name}_ready"; do
    pid=$(cat "$RUN/$name.pid" 2>/dev/null || true)
    if [[ -n $pid ]] && ! alive "$pid"; then
      log "$name exited during startup; last lines of $LOGS/$name.log:"
      tail -n 50 "$LOGS/$name.log" >&2; rm -f "$RUN/$name.pid" "$RUN/$name.port"; exit 1
    fi
    if (( SECONDS >= deadline )); then
      log "$name not ready after ${TIMEOUT[$name]}s; last lines of $LOGS/$name.log:"
      tail -n 50 "$LOGS/$name.log" >&2; down_one "$name"; exit 1
    fi
    sleep 0.5
  done
}

start_kafka() {
  local dir=$RUN/kafka log4j=$ROOT/deploy/kafka/log4j.properties
  command -v java >/dev/null || die "java is not installed"
  mkdir -p "$dir"
  if ! compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null; then
    command -v mvn >/dev/null || apt_install maven
    log "fetching Kafka jars with Maven (first run only)"
    rm -rf "$KAFKA_LIBS.tmp"
    mvn -B -f "$ROOT/deploy/kafka/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
      -DoutputDirectory="$KAFKA_LIBS.tmp" >"$LOGS/kafka-maven.log" 2>&1 ||
      { tail -n 50 "$LOGS/kafka-maven.log" >&2; die "mvn failed"; }
    mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS"   # only a complete download counts as installed
  fi
  local java=(java -Dlog4j.configuration="file:$log4j" -cp "$KAFKA_LIBS/*")
  local plain=PLAINTEXT://127.0.0.1:${PORT[kafka]} sasl=
  [[ -z $KAFKA_SASL_PORT ]] || sasl=,SASL_PLAINTEXT://127.0.0.1:$KAFKA_SASL_PORT
  # Settings that depend on paths and ports; in a properties file the last occurrence of a key wins.
  # The file may hold the SASL password: only its owner reads it.
  ( umask 077
    { cat "$ROOT/deploy/kafka/server.properties"; cat <<EOF

log.dirs=$dir/data
listeners=$plain$sasl,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=$plain$sasl
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
EOF
      [[ -z $KAFKA_SASL_PORT ]] || kafka_sasl_properties
    } >"$dir/server.properties.tmp" )
  mv "$dir/server.properties.tmp" "$dir/server.properties"
  if [[ ! -s $dir/cluster.id ]]; then
    "${java[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1 >"$dir/cluster.id"
    grep -qE '^[A-Za-z0-9_-]{22}$' "$dir/cluster.id" || die "could not generate a Kafka cluster id"
  fi
  if [[ ! -f $dir/data/meta.properties ]]; then
    mkdir -p "$dir/data"
    "${java[@]}" kafka.tools.StorageTool format -t "$(cat "$dir/cluster.id")" \
      -c "$dir/server.properties" --ignore-formatted >"$LOGS/kafka-format.log" 2>&1 ||
      { tail -n 50 "$LOGS/kafka-format.log" >&2; die "Kafka storage format failed"; }
  fi
  claim_port "${PORT[kafka]}"; claim_port "$KAFKA_CONTROLLER_PORT"
  [[ -z $KAFKA_SASL_PORT ]] || claim_port "$KAFKA_SASL_PORT"
  spawn kafka java -Xms256m -Xmx1g -Dlog4j.configuration="file:$log4j" -cp "$KAFKA_LIBS/*" \
    kafka.Kafka "$dir/server.properties"
}

# SASL/PLAIN on its own listener, users from a JAAS line (no authorizer: every user may do anything).
kafka_sasl_properties() {
  local pw=${HEARTH_KAFKA_SASL_PASSWORD-}
  [[ $KAFKA_SASL_PORT =~ ^[0-9]+$ ]] || die "HEARTH_KAFKA_SASL_PORT must be a port number"
  [[ -n $pw ]] || die "HEARTH_KAFKA_SASL_PORT needs HEARTH_KAFKA_SASL_PASSWORD"
  [[ $KAFKA_SASL_USER =~ ^[A-Za-z0-9._-]+$ ]] || die "HEARTH_KAFKA_SASL_USER: letters, digits, . _ - only"
  [[ $pw != *[\"\\$'\n']* ]] || die "HEARTH_KAFKA_SASL_PASSWORD must not contain \" \\ or a line break"
  cat <<EOF
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
listener.name.sasl_plaintext.sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \\
  username="$KAFKA_SASL_USER" password="$pw" user_$KAFKA_SASL_USER="$pw";
EOF
}

start_redis() {
  command -v redis-server >/dev/null || apt_install redis-server
  claim_port "${PORT[redis]}" redis-server
  mkdir -p "$RUN/redis"
  # The password goes in a file only its owner reads, not on the command line (ps shows that).
  local conf=$RUN/redis/auth.conf pw=${REDIS_PASSWORD//\\/\\\\}
  ( umask 077; if [[ -n $REDIS_PASSWORD ]]; then printf 'requirepass "%s"\n' "${pw//\"/\\\"}"; fi >"$conf" )
  local tls=()
  if [[ -n ${HEARTH_REDIS_TLS_PORT-} ]]; then
    [[ -r ${HEARTH_REDIS_TLS_CERT-} && -r ${HEARTH_REDIS_TLS_KEY-} ]] ||
      die "HEARTH_REDIS_TLS_PORT needs readable HEARTH_REDIS_TLS_CERT and HEARTH_REDIS_TLS_KEY files"
    claim_port "$HEARTH_REDIS_TLS_PORT"
    # Server authentication only: clients verify the server, the server asks no client certificate.
    tls=(--tls-port "$HEARTH_REDIS_TLS_PORT" --tls-cert-file "$HEARTH_REDIS_TLS_CERT"
         --tls-key-file "$HEARTH_REDIS_TLS_KEY" --tls-auth-clients no)
  fi
  spawn redis redis-server "$conf" --bind 127.0.0.1 --port "${PORT[redis]}" "${tls[@]}" --save '' \
    --appendonly no --daemonize no --dir "$RUN/redis"
}

start_prometheus() {
  command -v prometheus >/dev/null || apt_install prometheus
  claim_port "${PORT[prometheus]}" prometheus
  local cfg=$ROOT/deploy/prometheus/prometheus.yml
  if [[ ! -f $cfg ]]; then
    cfg=$RUN/prometheus.yml
    cat >"$cfg" <<EOF
# Placeholder written by deploy/services.sh until deploy/prometheus/prometheus.yml exists.
global:
  scrape_interval: 5s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: ['127.0.0.1:${PORT[prometheus]}']
EOF
  fi
  mkdir -p "$RUN/prometheus"
  spawn prometheus prometheus --config.file="$cfg" --storage.tsdb.path="$RUN/prometheus" \
    --web.listen-address="127.0.0.1:${PORT[prometheus]}" --web.enable-lifecycle
}

up_one() {
  local name=$1 pid t0=$SECONDS
  if pid=$(our_pid "$name"); then
    local port; port=$(cat "$RUN/$name.port" 2>/dev/null || echo "${PORT[$name]}")
    [[ $port == "${PORT[$name]}" ]] || die "$name is already running on port $port (pid $pid); run 'down $name' first"
    wait_ready "$name"   # it may have been started a moment ago by another caller
    log "$name already running (pid $pid, 127.0.0.1:${PORT[$name]})"
    return
  fi
  log "starting $name"
  "start_$name"
  wait_ready "$name"
  log "$name up (pid $(cat "$RUN/$name.pid"), 127.0.0.1:${PORT[$name]}, $((SECONDS - t0))s)"
}

down_one() {
  local name=$1 pid
  if pid=$(our_pid "$name"); then
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in {1..60}; do alive "$pid" || break; sleep 0.5; done
    if alive "$pid"; then log "$name ignored TERM for 30s, killing"; kill -KILL "$pid" 2>/dev/null || true; fi
  else
    log "$name not running"
  fi
  rm -f "$RUN/$name.pid" "$RUN/$name.port"
}

status_one() {
  local name=$1 pid
  if pid=$(our_pid "$name"); then
    PORT[$name]=$(cat "$RUN/$name.port" 2>/dev/null || echo "${PORT[$name]}")
    if "${name}_ready"; then echo "$name: up (pid $pid, 127.0.0.1:${PORT[$name]})"; return 0; fi
    echo "$name: starting or unhealthy (pid $pid)"
  else
    echo "$name: down"
  fi
  return 1
}

usage() { sed -n '2,13s/^# \{0,1\}//p' "$0" >&2; exit 2; }

cmd=${1-}; shift || true
case $cmd in
  up) default=(kafka redis) ;;
  down|status|reset) default=(kafka redis prometheus) ;;
  *) usage ;;
esac
services=("$@"); (( ${#services[@]} )) || services=("${default[@]}")
for s in "${services[@]}"; do [[ -n ${PORT[$s]-} ]] || { log "unknown service: $s"; usage; }; done

mkdir -p "$LOGS"
if [[ $cmd == status ]]; then
  rc=0; for s in "${services[@]}"; do status_one "$s" || rc=3; done; exit $rc
fi
# Serialise concurrent callers (parallel test sessions, several engineers).
exec 9>"$RUN/.lock"
flock -w 300 9 || die "timed out waiting for another services.sh to finish"
for s in "${services[@]}"; do
  case $cmd in
    up) up_one "$s" ;;
    down) down_one "$s" ;;
    reset) down_one "$s"; log "deleting $s data"
           case $s in kafka) rm -rf "$RUN/kafka/data" ;; *) rm -rf "${RUN:?}/$s" ;; esac ;;
  esac
done
