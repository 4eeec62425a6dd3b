#!/usr/bin/env python3
"""The checks behind scripts/check-deploy, one subcommand each:

  compose-env ROOT                docker-compose.yml's ${VAR:-default}s against .env.example,
                                  health checks, depends_on conditions, each service's own
                                  PostgreSQL role and RabbitMQ user
  dockerfile ROOT                 the Dockerfile's stages, COPY sources, USER, entrypoints
  manifests ROOT NAME FILE [NS]   a rendered kustomization (kubectl kustomize output)

Each prints one line per problem ("<file>: <what is wrong>") and exits 1 if there was any,
0 otherwise. Needs python3 and PyYAML only.
"""

import fnmatch
import os
import re
import shlex
import sys

import yaml


class Problems:
    def __init__(self, where):
        self.where = where
        self.items = []

    def add(self, text):
        self.items.append(text)
        print(f"  {self.where}: {text}")

    def done(self, what):
        if self.items:
            print(f"  {self.where}: {len(self.items)} problem(s)")
            return 1
        print(f"  {self.where}: ok ({what})")
        return 0


def read(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


# --- .env.example and docker-compose.yml --------------------------------------------------


def parse_env_file(text):
    values = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise ValueError(f"line {number} is not NAME=value: {line!r}")
        name, value = line.split("=", 1)
        values[name.strip()] = value
    return values


# $$ is compose's escape for a literal $; ${NAME}, ${NAME:-default}, ${NAME-default},
# ${NAME:?message} and $NAME are substitutions.
SUBSTITUTION = re.compile(
    r"\$\$|\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


def check_compose_env(root):
    problems = Problems("docker-compose.yml")
    compose_text = read(os.path.join(root, "docker-compose.yml"))
    try:
        env = parse_env_file(read(os.path.join(root, ".env.example")))
    except (OSError, ValueError) as error:
        problems.add(f".env.example: {error}")
        return problems.done("")

    used = set()
    for number, line in enumerate(compose_text.splitlines(), 1):
        if line.lstrip().startswith("#"):
            continue
        for match in SUBSTITUTION.finditer(line):
            name = match.group("braced") or match.group("bare")
            if not name:
                continue
            used.add(name)
            if name not in env:
                problems.add(f"line {number}: ${{{name}}} is not set in .env.example")
                continue
            if match.group("op") in (":-", "-") and match.group("arg") != env[name]:
                problems.add(
                    f"line {number}: the default of {name} ({match.group('arg')!r}) differs "
                    f"from .env.example's value ({env[name]!r})"
                )
            elif match.group("braced") and match.group("op") is None:
                problems.add(
                    f"line {number}: ${{{name}}} has no default, so `docker compose up` "
                    f"without a .env breaks: write ${{{name}:-{env[name]}}}"
                )
    for name in sorted(set(env) - used):
        problems.add(f".env.example sets {name}, which docker-compose.yml never uses")

    compose = yaml.safe_load(compose_text)
    services = compose.get("services", {})
    for name, service in services.items():
        health = service.get("healthcheck")
        if not health or not health.get("test"):
            problems.add(f"service {name} has no healthcheck")
        if "build" in service:
            test = " ".join(map(str, health.get("test", []))) if health else ""
            if "/ready" not in test:
                problems.add(f"service {name} (built here) has no healthcheck on /ready")
            if service.get("user") in ("root", "0"):
                problems.add(f"service {name} runs as root")
        depends = service.get("depends_on", {})
        if isinstance(depends, list):
            problems.add(f"service {name}: depends_on is a list; use condition: service_healthy")
            depends = {}
        for dependency, spec in depends.items():
            if dependency not in services:
                problems.add(f"service {name} depends on unknown service {dependency}")
            elif (spec or {}).get("condition") != "service_healthy":
                problems.add(f"service {name} depends on {dependency} without service_healthy")
            elif not services[dependency].get("healthcheck"):
                problems.add(f"service {name} waits for {dependency}, which has no healthcheck")
    check_compose_credentials(problems, services)
    if "name" in compose:
        problems.add("top-level name: is not accepted by docker-compose v1")
    return problems.done(f"{len(services)} services, {len(env)} settings")


def service_environment(service):
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment if "=" in item)
    return {str(k): str(v) for k, v in environment.items()}


URL_CREDENTIALS = re.compile(r"^(?P<scheme>[a-z]+)://(?P<user>[^:@/]+):(?P<password>[^@]+)@[^/]+/(?P<path>[^?]*)")


def check_compose_credentials(problems, services):
    """Least privilege: each built service logs in to PostgreSQL with the role of its own
    database (docker/postgres/create-databases.sh makes the database:role pairs of the
    postgres service's NOTIFS_DATABASES) and to RabbitMQ with a user of its own
    (docker/rabbitmq/definitions.sh makes the NOTIFS_RABBITMQ_*_USER users), never with an
    administrator's account, and with the same password the server side sets."""
    postgres = service_environment(services.get("postgres") or {})
    pairs = {}
    for pair in filter(None, postgres.get("NOTIFS_DATABASES", "").replace(",", " ").split()):
        database, _, role = pair.partition(":")
        if not role:
            problems.add(f"postgres: NOTIFS_DATABASES entry {pair!r} is not database:role")
            continue
        pairs[database] = role
        if f"NOTIFS_PASSWORD_{role}" not in postgres:
            problems.add(f"postgres: no NOTIFS_PASSWORD_{role} for role {role}")
    rabbit = service_environment(services.get("rabbitmq") or {})
    rabbit_users = {}  # user name -> password expression
    for name, value in rabbit.items():
        match = re.match(r"NOTIFS_RABBITMQ_(\w+)_USER$", name)
        if match and match.group(1) != "ADMIN":
            rabbit_users[value] = rabbit.get(f"NOTIFS_RABBITMQ_{match.group(1)}_PASSWORD")
    admin_users = {postgres.get("POSTGRES_USER"), rabbit.get("NOTIFS_RABBITMQ_ADMIN_USER")}

    db_roles = {}  # role -> services using it
    amqp_users = {}
    for name, service in services.items():
        if "build" not in service:
            continue
        environment = service_environment(service)
        url = environment.get("DATABASE_URL")
        if url:
            match = URL_CREDENTIALS.match(url)
            if not match:
                problems.add(f"service {name}: DATABASE_URL has no user:password@host/database")
            else:
                database, user = match.group("path"), match.group("user")
                if database not in pairs:
                    problems.add(f"service {name} uses database {database}, which the postgres "
                                 "service's NOTIFS_DATABASES does not create")
                elif user != pairs[database]:
                    problems.add(f"service {name} logs in to {database} as {user}, not as its "
                                 f"owner role {pairs[database]}")
                elif match.group("password") != postgres.get(f"NOTIFS_PASSWORD_{user}"):
                    problems.add(f"service {name}: DATABASE_URL's password is not the one the "
                                 f"postgres service gives role {user} (NOTIFS_PASSWORD_{user})")
                if user in admin_users or "POSTGRES_USER" in user:
                    problems.add(f"service {name} logs in to PostgreSQL as the administrator")
                db_roles.setdefault(user, set()).add(database)
        url = environment.get("RABBITMQ_URL")
        if url:
            match = URL_CREDENTIALS.match(url)
            if not match:
                problems.add(f"service {name}: RABBITMQ_URL has no user:password@host/vhost")
                continue
            user = match.group("user")
            if user in admin_users or "RABBITMQ_USER" in user:
                problems.add(f"service {name} logs in to RabbitMQ as the administrator")
            elif user not in rabbit_users:
                problems.add(f"service {name} logs in to RabbitMQ as {user}, a user the rabbitmq "
                             "service's definitions do not make (NOTIFS_RABBITMQ_*_USER)")
            elif match.group("password") != rabbit_users[user]:
                problems.add(f"service {name}: RABBITMQ_URL's password is not the one the "
                             f"rabbitmq service gives {user}")
            amqp_users.setdefault(user, []).append(name)
    for user, names in amqp_users.items():
        if len(names) > 1:
            problems.add(f"services {', '.join(names)} share the RabbitMQ user {user}")
    for role, databases in db_roles.items():
        if len(databases) > 1:
            problems.add(f"role {role} is used for several databases: {', '.join(sorted(databases))}")


# --- Dockerfile -------------------------------------------------------------------------


def dockerfile_instructions(text):
    """(line number, INSTRUCTION, rest) with continuations joined and comments dropped."""
    out = []
    pending, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if pending and line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        word, _, rest = pending.strip().partition(" ")
        out.append((start, word.upper(), rest.strip()))
        pending = ""
    if pending:
        word, _, rest = pending.strip().partition(" ")
        out.append((start, word.upper(), rest.strip()))
    return out


def dockerignore_patterns(root):
    path = os.path.join(root, ".dockerignore")
    if not os.path.exists(path):
        return []
    patterns = []
    for line in read(path).splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            patterns.append(line)
    return patterns


def ignored(path, patterns):
    """Docker's rule, simplified: the last matching pattern wins, ! re-includes; a pattern
    matches a path or any of its parent folders."""
    path = os.path.normpath(path)
    parts = path.split("/")
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = os.path.normpath(pattern.lstrip("!").lstrip("/"))
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            if fnmatch.fnmatchcase(prefix, pattern) or (
                pattern.startswith("**/") and fnmatch.fnmatchcase(parts[i - 1], pattern[3:])
            ):
                result = not negate
                break
    return result


def copy_arguments(rest):
    """Flags and (sources, destination) of a COPY/ADD in shell or JSON form."""
    flags = {}
    if rest.startswith("["):
        words = yaml.safe_load(rest)
    else:
        words = shlex.split(rest)
    while words and words[0].startswith("--"):
        flag, _, value = words.pop(0)[2:].partition("=")
        flags[flag] = value
    return flags, words[:-1], words[-1] if words else None


def executables_in_cmake(root):
    names = set()
    for folder, _, files in os.walk(os.path.join(root, "services")):
        if "CMakeLists.txt" in files:
            text = read(os.path.join(folder, "CMakeLists.txt"))
            names.update(re.findall(r"add_executable\(\s*([A-Za-z0-9_]+)", text))
    return names


def check_dockerfile(root):
    problems = Problems("Dockerfile")
    text = read(os.path.join(root, "Dockerfile"))
    patterns = dockerignore_patterns(root)
    built_in_cmake = executables_in_cmake(root)

    stages = {}  # name -> {"base", "user", "copied": {dest: (stage, src)}, "entry", "runs"}
    order = []
    current = None
    copied_from = set()
    for number, word, rest in dockerfile_instructions(text):
        if word == "ARG" and current is None:
            continue  # an ARG before the first FROM parameterises the FROM lines
        if word == "FROM":
            match = re.match(r"(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?\s*$", rest, re.I)
            if not match or not match.group(2):
                problems.add(f"line {number}: FROM {rest} has no stage name (FROM image AS name)")
                current = {"base": rest, "user": None, "copied": {}, "entry": None, "runs": []}
                continue
            base, name = match.group(1), match.group(2)
            if name != name.lower():
                problems.add(f"line {number}: stage name {name} must be lower case")
            if name in stages:
                problems.add(f"line {number}: stage {name} is defined twice")
            parent = stages.get(base)
            current = {
                "base": base,
                "parent": base if parent else None,
                "user": parent["user"] if parent else None,
                "copied": dict(parent["copied"]) if parent else {},
                "entry": parent["entry"] if parent else None,
                "runs": [],
                "line": number,
            }
            stages[name] = current
            order.append(name)
            continue
        if current is None:
            problems.add(f"line {number}: {word} before the first FROM")
            continue
        if word == "USER":
            current["user"] = rest.split(":")[0]
        elif word == "RUN":
            current["runs"].append(rest)
        elif word in ("COPY", "ADD"):
            flags, sources, destination = copy_arguments(rest)
            if "from" in flags:
                source_stage = flags["from"]
                if source_stage not in stages:
                    problems.add(
                        f"line {number}: COPY --from={source_stage} names no earlier stage"
                    )
                    continue
                copied_from.add(source_stage)
                for source in sources:
                    target = destination
                    if destination.endswith("/"):
                        target = destination + os.path.basename(source)
                    current["copied"][target] = (source_stage, source)
                continue
            for source in sources:
                if re.match(r"^[a-z]+://", source):
                    problems.add(f"line {number}: {word} {source} downloads at build time")
                    continue
                if not os.path.exists(os.path.join(root, source)):
                    problems.add(f"line {number}: {word} source {source} is not in the tree")
                elif ignored(source, patterns):
                    problems.add(f"line {number}: {word} source {source} is in .dockerignore")
        elif word in ("ENTRYPOINT", "CMD"):
            if not rest.startswith("["):
                problems.add(f"line {number}: {word} in shell form; use the exec form [\"...\"]")
                continue
            # What runs: ENTRYPOINT's program, or CMD's when there is no ENTRYPOINT.
            if word == "ENTRYPOINT" or current["entry"] is None or current["entry"][2] == "CMD":
                current["entry"] = (number, yaml.safe_load(rest), word)

    if not stages:
        problems.add("no stages")
        return problems.done("")

    build_stages = copied_from
    runnable = [name for name in order if name not in build_stages]
    if not runnable:
        problems.add("every stage is copied from; no image to run")
    for name in runnable:
        stage = stages[name]
        user = stage["user"]
        if user is None:
            problems.add(f"stage {name} runs as root (no USER in it or the stages it builds on)")
        elif user in ("root", "0"):
            problems.add(f"stage {name} has USER {user}")
        elif not user.isdigit():
            problems.add(
                f"stage {name}: USER {user} is a name; Kubernetes' runAsNonRoot needs a numeric id"
            )
        entry = stage["entry"]
        if entry is None:
            if any(stages[other]["parent"] == name for other in order):
                continue  # a base for the service stages, run through them only
            problems.add(f"stage {name} has neither ENTRYPOINT nor CMD")
            continue
        number, argv, _ = entry
        if not argv:
            problems.add(f"line {number}: stage {name} has an empty ENTRYPOINT/CMD")
            continue
        binary = argv[0]
        if binary not in stage["copied"]:
            problems.add(
                f"line {number}: stage {name} runs {binary}, which no COPY --from put there"
            )
            continue
        source_stage, source = stage["copied"][binary]
        executable = os.path.basename(source)
        if executable not in built_in_cmake:
            problems.add(
                f"line {number}: {executable} is no add_executable() of services/*/CMakeLists.txt"
            )
        runs = " ".join(stages[source_stage]["runs"])
        if not re.search(r"--target[ =]" + re.escape(executable) + r"\b", runs):
            problems.add(f"line {number}: stage {source_stage} never builds --target {executable}")
        if os.path.dirname(source) not in runs:
            problems.add(
                f"line {number}: stage {source_stage} never writes to {os.path.dirname(source)}, "
                f"where {name} copies {executable} from"
            )

    for name in build_stages:
        runs = " ".join(stages[name]["runs"])
        if "cmake" in runs and "NOTIFS_BUILD_TESTS=OFF" not in runs:
            problems.add(f"stage {name} configures with the tests (add -DNOTIFS_BUILD_TESTS=OFF)")

    # Health checks of docker-compose.yml run curl inside the service images.
    compose_path = os.path.join(root, "docker-compose.yml")
    if os.path.exists(compose_path):
        compose = yaml.safe_load(read(compose_path))
        for service_name, service in compose.get("services", {}).items():
            build = service.get("build")
            if not build:
                continue
            target = build.get("target") if isinstance(build, dict) else None
            if target is None:
                problems.add(f"docker-compose.yml: {service_name} builds no target (last stage)")
                continue
            if target not in stages:
                problems.add(f"docker-compose.yml: {service_name} builds {target}, no such stage")
                continue
            test = (service.get("healthcheck") or {}).get("test") or []
            tool = test[1] if len(test) > 1 and test[0] == "CMD" else None
            if tool and tool.startswith("/"):
                continue
            chain, stage_name = [], target
            while stage_name:
                chain.append(stage_name)
                stage_name = stages[stage_name]["parent"]
            runs = " ".join(" ".join(stages[s]["runs"]) for s in chain)
            if tool and not re.search(r"\b" + re.escape(tool) + r"\b", runs):
                problems.add(
                    f"docker-compose.yml: {service_name}'s healthcheck runs {tool}, "
                    f"which target {target} does not install"
                )
    return problems.done(f"{len(stages)} stages, {len(runnable)} images")


# --- rendered Kubernetes manifests ------------------------------------------------------

CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def key(obj):
    return f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"


def selector_matches(selector, labels):
    match_labels = (selector or {}).get("matchLabels") or {}
    expressions = (selector or {}).get("matchExpressions") or []
    if not match_labels and not expressions:
        return False
    if any(labels.get(k) != v for k, v in match_labels.items()):
        return False
    for expression in expressions:
        value = labels.get(expression["key"])
        operator = expression["operator"]
        values = expression.get("values") or []
        if operator == "In" and value not in values:
            return False
        if operator == "NotIn" and value in values:
            return False
        if operator == "Exists" and value is None:
            return False
        if operator == "DoesNotExist" and value is not None:
            return False
    return True


def probe_path(container, probe):
    return (((container.get(probe) or {}).get("httpGet")) or {}).get("path")


def quantity_present(resources, part, name):
    return bool(((resources or {}).get(part) or {}).get(name))


def env_value(container, name):
    for item in container.get("env") or []:
        if item.get("name") == name:
            return item
    return None


def worker_channel(deployment):
    """The --channel of a worker Deployment's container, None for other Deployments."""
    for container in deployment["spec"]["template"]["spec"].get("containers", []):
        args = [str(a) for a in container.get("args") or []]
        if "--channel" in args[:-1]:
            return args[args.index("--channel") + 1]
    return None


def check_container(problems, where, container, pod_security, context):
    if probe_path(container, "readinessProbe") != "/ready":
        problems.add(f"{where}: readinessProbe is not an httpGet on /ready")
    if probe_path(container, "livenessProbe") != "/health":
        problems.add(f"{where}: livenessProbe is not an httpGet on /health")
    ports = container.get("ports") or []
    known_ports = {p.get("name") for p in ports} | {p.get("containerPort") for p in ports}
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        port = (((container.get(probe) or {}).get("httpGet")) or {}).get("port")
        if port is not None and port not in known_ports:
            problems.add(f"{where}: {probe} uses port {port}, which the container lacks")
    for part in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            if not quantity_present(container.get("resources"), part, resource):
                problems.add(f"{where}: no resources.{part}.{resource}")
    security = container.get("securityContext") or {}
    if not (security.get("runAsNonRoot") or pod_security.get("runAsNonRoot")):
        problems.add(f"{where}: runAsNonRoot is not set")
    if security.get("allowPrivilegeEscalation") is not False:
        problems.add(f"{where}: allowPrivilegeEscalation is not false")
    for scope in (security, pod_security):
        if scope.get("runAsUser") == 0 or scope.get("runAsGroup") == 0:
            problems.add(f"{where}: runs as user or group 0")
    if security.get("readOnlyRootFilesystem") is not True:
        problems.add(f"{where}: readOnlyRootFilesystem is not true")
    if "ALL" not in ((security.get("capabilities") or {}).get("drop") or []):
        problems.add(f"{where}: capabilities do not drop ALL")
    if security.get("privileged"):
        problems.add(f"{where}: privileged")

    config_maps, secret_refs = context["config_maps"], context["secret_refs"]
    for source in container.get("envFrom") or []:
        ref = source.get("configMapRef") or {}
        if ref.get("name") and ref["name"] not in config_maps:
            problems.add(f"{where}: envFrom names ConfigMap {ref['name']}, not rendered")
        if (source.get("secretRef") or {}).get("name"):
            secret_refs.setdefault(source["secretRef"]["name"], set())
    for item in container.get("env") or []:
        value_from = item.get("valueFrom") or {}
        if value_from.get("secretKeyRef"):
            ref = value_from["secretKeyRef"]
            secret_refs.setdefault(ref["name"], set()).add(ref["key"])
        ref = value_from.get("configMapKeyRef")
        if ref and ref["name"] not in config_maps:
            problems.add(f"{where}: env {item['name']} names ConfigMap {ref['name']}, not rendered")

    url = (env_value(container, "DATABASE_URL") or {}).get("value")
    if not url:
        return
    match = re.match(r"postgres(?:ql)?://[^@]*@([^:/]+)(?::\d+)?/([^?]+)", url)
    if not match:
        problems.add(f"{where}: DATABASE_URL is not postgresql://...@host/db")
        return
    host, database = match.groups()
    service = host.split(".")[0]
    if not service.endswith("-rw"):
        problems.add(f"{where}: DATABASE_URL's host {host} is not a CloudNativePG -rw service")
    cluster_name = service[: -len("-rw")] if service.endswith("-rw") else service
    if database not in context["cnpg_databases"].get(cluster_name, set()):
        problems.add(
            f"{where}: database {database} is created by neither Cluster/{cluster_name}'s "
            "bootstrap nor a Database resource"
        )


def check_scaling(problems, deployment, hpas, scaled_objects, trigger_auth):
    """Checks the autoscalers that target the Deployment; returns their keys."""
    name = deployment["metadata"]["name"]
    scaled_by = []
    channel = worker_channel(deployment)
    if channel:
        targets = [
            s for s in scaled_objects
            if (s["spec"].get("scaleTargetRef") or {}).get("name") == name
        ]
        if not targets:
            problems.add(f"Deployment/{name} (worker, channel {channel}): no KEDA ScaledObject")
        for scaled in targets:
            scaled_by.append(key(scaled))
            triggers = scaled["spec"].get("triggers") or []
            queues = [
                (t.get("metadata") or {}).get("queueName")
                for t in triggers
                if t.get("type") == "rabbitmq"
            ]
            if f"{channel}.queue" not in queues:
                problems.add(f"{key(scaled)}: no rabbitmq trigger on {channel}.queue")
            for trigger in triggers:
                auth = (trigger.get("authenticationRef") or {}).get("name")
                if auth and not trigger_auth(auth):
                    problems.add(f"{key(scaled)}: TriggerAuthentication {auth} is not rendered")
            low = scaled["spec"].get("minReplicaCount", 0)
            high = scaled["spec"].get("maxReplicaCount", 100)
            if low > high:
                problems.add(f"{key(scaled)}: minReplicaCount {low} > maxReplicaCount {high}")
    for hpa in hpas:
        target = hpa["spec"].get("scaleTargetRef") or {}
        if target.get("kind") == "Deployment" and target.get("name") == name:
            scaled_by.append(key(hpa))
            if hpa["spec"].get("minReplicas", 1) > hpa["spec"].get("maxReplicas", 0):
                problems.add(f"{key(hpa)}: minReplicas > maxReplicas")
            if not hpa["spec"].get("metrics"):
                problems.add(f"{key(hpa)}: no metrics")
    return scaled_by


def is_rabbit(obj, kind):
    return obj.get("kind") == kind and str(obj.get("apiVersion", "")).startswith("rabbitmq.com/")


def url_secret(container, url_name, position):
    """The Secret whose key fills the user part of the container's URL variable
    `url_name` when it is built as scheme://$(USER):$(PASSWORD)@...; position "user".
    Returns (secret name or None, problem text or None)."""
    item = env_value(container, url_name)
    if not item:
        return None, None
    if "valueFrom" in item:
        return None, f"{url_name} comes whole from a Secret; build it from a username and password of its own"
    match = re.match(r"^[a-z]+://\$\((\w+)\):\$\((\w+)\)@", str(item.get("value", "")))
    if not match:
        return None, f"{url_name} is not built as scheme://$(USER):$(PASSWORD)@..."
    refs = []
    for variable in match.groups():
        ref = ((env_value(container, variable) or {}).get("valueFrom") or {}).get("secretKeyRef")
        if not ref:
            return None, f"{url_name}: $({variable}) does not come from a Secret"
        refs.append(ref["name"])
    if refs[0] != refs[1]:
        return None, f"{url_name}: user and password come from different Secrets"
    return refs[0], None


def check_least_privilege(problems, by_kind, deployments, cnpg_clusters):
    """Each Deployment logs in to RabbitMQ with a user of its own whose Permission fits its
    job, and to PostgreSQL with the role that owns its database; the roles are plain."""
    users = {}  # importCredentialsSecret name -> User object name
    for user in [o for o in by_kind.get("User", []) if is_rabbit(o, "User")]:
        secret = ((user["spec"].get("importCredentialsSecret")) or {}).get("name")
        if not secret:
            problems.add(f"{key(user)}: no importCredentialsSecret (the password would be generated)")
            continue
        users[secret] = user["metadata"]["name"]
    permissions = {}
    for permission in [o for o in by_kind.get("Permission", []) if is_rabbit(o, "Permission")]:
        user = (permission["spec"].get("userReference") or {}).get("name") or permission["spec"].get("user")
        permissions[user] = permission["spec"].get("permissions") or {}
    for user in users.values():
        if user not in permissions:
            problems.add(f"User/{user} has no Permission (it could not even connect)")

    owners = {}  # database -> owner role
    role_secrets = {}  # role -> password Secret
    for cluster in cnpg_clusters:
        initdb = ((cluster["spec"].get("bootstrap") or {}).get("initdb")) or {}
        if initdb.get("database"):
            owners[initdb["database"]] = initdb.get("owner", initdb["database"])
            if (initdb.get("secret") or {}).get("name"):
                role_secrets[initdb.get("owner", initdb["database"])] = initdb["secret"]["name"]
        for role in ((cluster["spec"].get("managed") or {}).get("roles")) or []:
            for flag in ("superuser", "createdb", "createrole", "replication", "bypassrls"):
                if role.get(flag):
                    problems.add(f"{key(cluster)}: role {role.get('name')} has {flag}")
            if (role.get("passwordSecret") or {}).get("name"):
                role_secrets[role["name"]] = role["passwordSecret"]["name"]
    for database in by_kind.get("Database", []):
        owners[database["spec"].get("name")] = database["spec"].get("owner")
    hba = [line.split() for c in cnpg_clusters for line in ((c["spec"].get("postgresql") or {}).get("pg_hba") or [])]

    rabbit_secret_of = {}
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        channel = worker_channel(deployment)
        for container in deployment["spec"]["template"]["spec"].get("containers", []):
            where = f"Deployment/{name}"
            secret, problem = url_secret(container, "RABBITMQ_URL", "user")
            if problem:
                problems.add(f"{where}: {problem}")
            elif secret:
                if secret.endswith("-default-user"):
                    problems.add(f"{where}: logs in to RabbitMQ as the administrator ({secret})")
                elif secret not in users:
                    problems.add(f"{where}: RabbitMQ credentials {secret} are no User's importCredentialsSecret")
                else:
                    other = rabbit_secret_of.get(secret)
                    if other:
                        problems.add(f"{where} shares its RabbitMQ user with Deployment/{other}")
                    rabbit_secret_of[secret] = name
                    check_rabbit_permission(problems, where, permissions.get(users[secret]) or {}, channel)
            secret, problem = url_secret(container, "DATABASE_URL", "user")
            if problem:
                problems.add(f"{where}: {problem}")
            elif secret:
                url = env_value(container, "DATABASE_URL")["value"]
                database = url.rsplit("/", 1)[-1].split("?")[0]
                owner = owners.get(database)
                if owner is None:
                    continue  # reported by check_container
                if role_secrets.get(owner) != secret:
                    problems.add(f"{where}: logs in to {database} with Secret {secret}, not that of "
                                 f"its owner role {owner} ({role_secrets.get(owner)})")
                if hba and not any(line[:3] == ["hostssl", database, owner] or line[:3] == ["host", database, owner] for line in hba):
                    problems.add(f"pg_hba has no rule letting {owner} reach {database}")
                if hba and not any(line[0] == "host" and line[1] == "all" and owner in line[2].split(",")
                                   and line[-1] == "reject" for line in hba):
                    problems.add(f"pg_hba does not refuse role {owner} on the other databases")


# docker/rabbitmq/definitions.sh's users -> the User objects of deploy/base/rabbitmq-access.yaml.
DEFINITION_USERS = {"gateway": "notifs-gateway", "email_worker": "notifs-email-worker",
                    "push_worker": "notifs-push-worker"}


def check_topology_matches_definitions(problems, root, by_kind):
    """The Kubernetes topology and permissions (Topology Operator objects) are those of
    docker/rabbitmq/definitions.sh with quorum queues, which scripts/run and compose use:
    one set of rules, two spellings, kept in step here."""
    import json
    import subprocess

    queues = {o["spec"]["name"]: o["spec"] for o in by_kind.get("Queue", []) if is_rabbit(o, "Queue")}
    if not queues:
        return
    environment = dict(os.environ, RABBITMQ_QUEUE_TYPE="quorum")
    for variable in ("ADMIN", "GATEWAY", "EMAIL_WORKER", "PUSH_WORKER"):
        environment[f"NOTIFS_RABBITMQ_{variable}_PASSWORD"] = "x"
    environment.update(NOTIFS_RABBITMQ_ADMIN_USER="admin", NOTIFS_RABBITMQ_GATEWAY_USER="gateway",
                       NOTIFS_RABBITMQ_EMAIL_WORKER_USER="email_worker",
                       NOTIFS_RABBITMQ_PUSH_WORKER_USER="push_worker")
    script = os.path.join(root, "docker", "rabbitmq", "definitions.sh")
    try:
        output = subprocess.run(["bash", script], env=environment, check=True,
                                capture_output=True, text=True).stdout
        definitions = json.loads(output)
    except (OSError, subprocess.CalledProcessError, ValueError) as error:
        problems.add(f"docker/rabbitmq/definitions.sh failed: {error}")
        return
    for queue in definitions["queues"]:
        spec = queues.pop(queue["name"], None)
        if spec is None:
            problems.add(f"queue {queue['name']} of definitions.sh has no Queue object")
            continue
        wanted = {k: v for k, v in queue["arguments"].items() if k != "x-queue-type"}
        if spec.get("type") != queue["arguments"].get("x-queue-type"):
            problems.add(f"Queue {queue['name']}: type {spec.get('type')}, definitions.sh says "
                         f"{queue['arguments'].get('x-queue-type')}")
        if (spec.get("arguments") or {}) != wanted:
            problems.add(f"Queue {queue['name']}: arguments {spec.get('arguments')} differ from "
                         f"definitions.sh's {wanted}")
    for name in queues:
        problems.add(f"Queue {name} is not in definitions.sh")
    exchanges = {o["spec"]["name"] for o in by_kind.get("Exchange", []) if is_rabbit(o, "Exchange")}
    if exchanges != {e["name"] for e in definitions["exchanges"]}:
        problems.add(f"Exchange objects {sorted(exchanges)} differ from definitions.sh's")
    bindings = {(o["spec"].get("source"), o["spec"].get("destination"), o["spec"].get("routingKey"))
                for o in by_kind.get("Binding", []) if is_rabbit(o, "Binding")}
    if bindings != {(b["source"], b["destination"], b["routing_key"]) for b in definitions["bindings"]}:
        problems.add("Binding objects differ from definitions.sh's bindings")
    permissions = {}
    for permission in [o for o in by_kind.get("Permission", []) if is_rabbit(o, "Permission")]:
        user = (permission["spec"].get("userReference") or {}).get("name")
        permissions[user] = permission["spec"].get("permissions") or {}
    for entry in definitions["permissions"]:
        user = DEFINITION_USERS.get(entry["user"])
        if user is None:
            continue  # the administrator: the cluster operator's own on Kubernetes
        got = permissions.get(user)
        want = {k: entry[k] for k in ("configure", "write", "read")}
        if got != want:
            problems.add(f"Permission of {user}: {got} differ from definitions.sh's {entry['user']}: {want}")


def check_rabbit_permission(problems, where, permission, channel):
    def allows(kind, name):
        pattern = permission.get(kind, "")
        try:
            return re.search(pattern, name) is not None if pattern else False
        except re.error:
            problems.add(f"{where}: {kind} permission {pattern!r} is no regular expression")
            return True
    if channel:
        other = "push" if channel == "email" else "email"
        must = [("read", f"{channel}.queue"), ("write", "notifications.retry"),
                ("write", "notifications.dlx"), ("write", "notifications.status")]
        must_not = [("read", f"{other}.queue"), ("read", "status.queue"), ("read", "failed.queue"),
                    ("write", "notifications.direct")]
    else:
        must = [("read", "status.queue"), ("write", "notifications.direct"), ("write", "notifications.dlx")]
        must_not = [("read", "email.queue"), ("read", "push.queue"), ("read", "failed.queue"),
                    ("write", "notifications.status"), ("write", "notifications.retry")]
    must_not.append(("configure", "some.other.queue"))
    for kind, name in must:
        if not allows(kind, name):
            problems.add(f"{where}: its RabbitMQ user may not {kind} {name}, which its job needs")
    for kind, name in must_not:
        if allows(kind, name):
            problems.add(f"{where}: its RabbitMQ user may {kind} {name}, which its job does not need")


def check_manifests(root, label, path, namespace):
    problems = Problems(label)
    try:
        objects = [o for o in yaml.safe_load_all(read(path)) if o]
    except yaml.YAMLError as error:
        problems.add(f"rendered output is not YAML: {error}")
        return problems.done("")

    by_kind = {}
    for obj in objects:
        by_kind.setdefault(obj.get("kind"), []).append(obj)
        obj_namespace = obj.get("metadata", {}).get("namespace")
        if obj.get("kind") in CLUSTER_SCOPED:
            continue
        if namespace is None and obj_namespace:
            problems.add(f"{key(obj)} has namespace {obj_namespace}; the base must not name one")
        if namespace is not None and obj_namespace != namespace:
            problems.add(f"{key(obj)} is in namespace {obj_namespace}, not {namespace}")

    def named(kind, name):
        return next((o for o in by_kind.get(kind, []) if o["metadata"]["name"] == name), None)

    deployments = by_kind.get("Deployment", [])
    if not deployments:
        problems.add("no Deployment")
    config_maps = {o["metadata"]["name"]: o for o in by_kind.get("ConfigMap", [])}
    secrets = {o["metadata"]["name"]: o for o in by_kind.get("Secret", [])}
    secret_refs = {}  # name -> set of keys
    pdbs = by_kind.get("PodDisruptionBudget", [])
    hpas = by_kind.get("HorizontalPodAutoscaler", [])
    scaled_objects = by_kind.get("ScaledObject", [])
    cnpg_clusters = [
        o for o in by_kind.get("Cluster", []) if o["apiVersion"].startswith("postgresql.cnpg.io/")
    ]
    cnpg_databases = {}  # cluster name -> database names it creates
    for database in by_kind.get("Database", []):
        cluster_name = (database["spec"].get("cluster") or {}).get("name")
        cnpg_databases.setdefault(cluster_name, set()).add(database["spec"].get("name"))
    for cluster in cnpg_clusters:
        initdb = ((cluster["spec"].get("bootstrap") or {}).get("initdb")) or {}
        if initdb.get("database"):
            cnpg_databases.setdefault(cluster["metadata"]["name"], set()).add(initdb["database"])
        if (initdb.get("secret") or {}).get("name"):
            secret_refs.setdefault(initdb["secret"]["name"], set()).update({"username", "password"})
        for role in ((cluster["spec"].get("managed") or {}).get("roles")) or []:
            if (role.get("passwordSecret") or {}).get("name"):
                secret_refs.setdefault(role["passwordSecret"]["name"], set()).update(
                    {"username", "password"}
                )

    context = {
        "config_maps": config_maps,
        "secret_refs": secret_refs,
        "cnpg_databases": cnpg_databases,
    }
    for deployment in deployments:
        name = deployment["metadata"]["name"]
        spec = deployment["spec"]
        pod_labels = spec["template"]["metadata"].get("labels") or {}
        if not selector_matches(spec.get("selector"), pod_labels):
            problems.add(f"Deployment/{name}: its selector does not match its pod labels")
        pod = spec["template"]["spec"]
        for container in pod.get("containers", []):
            check_container(problems, f"Deployment/{name} container {container.get('name')}",
                            container, pod.get("securityContext") or {}, context)

        matching_pdbs = [p for p in pdbs if selector_matches(p["spec"].get("selector"), pod_labels)]
        if not matching_pdbs:
            problems.add(f"Deployment/{name}: no PodDisruptionBudget selects its pods")
        for pdb in matching_pdbs:
            if pdb["spec"].get("maxUnavailable") in (0, "0", "0%"):
                problems.add(f"{key(pdb)}: maxUnavailable 0 blocks every drain")

        scaled_by = check_scaling(problems, deployment, hpas, scaled_objects,
                                  lambda name: named("TriggerAuthentication", name))
        if name == "api-gateway" and not any(
            s.startswith("HorizontalPodAutoscaler/") for s in scaled_by
        ):
            problems.add("Deployment/api-gateway: no HorizontalPodAutoscaler")
        if scaled_by and "replicas" in spec:
            problems.add(
                f"Deployment/{name} sets replicas although {', '.join(scaled_by)} owns them "
                "(every apply would reset the count)"
            )
    if not any(d["metadata"]["name"] == "api-gateway" for d in deployments):
        problems.add("no Deployment api-gateway")
    if not any(worker_channel(d) for d in deployments):
        problems.add("no worker Deployment (container args --channel ...)")

    check_least_privilege(problems, by_kind, deployments, cnpg_clusters)
    check_topology_matches_definitions(problems, root, by_kind)
    for user in [o for o in by_kind.get("User", []) if is_rabbit(o, "User")]:
        secret = ((user["spec"].get("importCredentialsSecret")) or {}).get("name")
        if secret:
            secret_refs.setdefault(secret, set()).update({"username", "password"})

    for trigger_auth in by_kind.get("TriggerAuthentication", []):
        for ref in trigger_auth["spec"].get("secretTargetRef") or []:
            secret_refs.setdefault(ref["name"], set()).add(ref["key"])

    rabbit_clusters = by_kind.get("RabbitmqCluster", [])
    if not rabbit_clusters:
        problems.add("no RabbitmqCluster")
    for cluster in rabbit_clusters:
        if cluster["spec"].get("replicas") != 3:
            problems.add(f"{key(cluster)}: replicas is {cluster['spec'].get('replicas')}, not 3")
    for config in config_maps.values():
        queue_type = (config.get("data") or {}).get("RABBITMQ_QUEUE_TYPE")
        if queue_type is not None and queue_type != "quorum":
            problems.add(f"{key(config)}: RABBITMQ_QUEUE_TYPE is {queue_type}, not quorum")
    if not any("RABBITMQ_QUEUE_TYPE" in (c.get("data") or {}) for c in config_maps.values()):
        problems.add("no ConfigMap sets RABBITMQ_QUEUE_TYPE=quorum")
    if not cnpg_clusters:
        problems.add("no CloudNativePG Cluster (postgresql.cnpg.io)")

    # Secrets: rendered ones must carry the keys used; the others must exist before the
    # apply, so the README has to tell how to make each of them.
    external = []
    for name, keys in sorted(secret_refs.items()):
        if name in secrets:
            secret = secrets[name]
            data = set(secret.get("data") or {}) | set(secret.get("stringData") or {})
            for missing in sorted(keys - data):
                problems.add(f"Secret/{name} has no key {missing}")
        else:
            external.append(name)
    if external:
        readme = read(os.path.join(root, "deploy", "README.md"))
        for name in external:
            if name not in readme:
                problems.add(
                    f"Secret {name} must exist beforehand, but deploy/README.md never says how"
                )
    if namespace and secrets and external:
        problems.add(f"some Secrets are generated, these are not: {', '.join(external)}")

    summary = f"{len(objects)} objects, {len(deployments)} Deployments"
    if external:
        summary += f", expects existing Secrets {', '.join(external)}"
    else:
        summary += f", {len(secrets)} generated Secrets"
    return problems.done(summary)


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    command, root = argv[1], argv[2]
    if command == "compose-env":
        return check_compose_env(root)
    if command == "dockerfile":
        return check_dockerfile(root)
    if command == "manifests" and len(argv) in (5, 6):
        return check_manifests(root, argv[3], argv[4], argv[5] if len(argv) == 6 else None)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
