<#
.SYNOPSIS
    Bring up the filmrec platform with Docker Compose (Windows counterpart of init.sh).

.DESCRIPTION
    Checks Docker and Compose (v2 >= 2.20) and the memory, creates .env from
    .env.example with generated secrets (never overwriting an existing .env: only its
    empty secrets are filled in), creates lakehouse/ and airflow/logs, builds and starts
    the platform, waits for it to be healthy, runs test-connections.py and prints the
    URL of every UI. Idempotent: run it again at any time.

.PARAMETER NoStart
    Only prepare .env and the directories.

.EXAMPLE
    powershell -ExecutionPolicy Bypass -File .\init.ps1
#>
[CmdletBinding()]
param(
    [switch]$NoStart
)

Set-StrictMode -Version Latest
$ErrorActionPreference = 'Stop'

$MinComposeVersion = [version]'2.20.0'
$MinMemoryGiB = 8
$WaitSeconds = 300
# Secrets in .env that must not stay empty; AIRFLOW_FERNET_KEY has its own format.
$SecretKeys = @(
    'POSTGRES_PASSWORD', 'APP_DB_PASSWORD', 'MLFLOW_DB_PASSWORD', 'AIRFLOW_DB_PASSWORD',
    'AIRFLOW_ADMIN_PASSWORD', 'AIRFLOW_SECRET_KEY', 'AIRFLOW_JWT_SECRET', 'AIRFLOW_FERNET_KEY',
    'GRAFANA_ADMIN_PASSWORD', 'FILMREC_API_KEYS'
)

Set-Location -Path $PSScriptRoot
$EnvFile = Join-Path $PSScriptRoot '.env'

function Write-Step([string]$Message) { Write-Host "==> $Message" }

function Test-Docker {
    if (-not (Get-Command docker -ErrorAction SilentlyContinue)) {
        throw 'docker is not installed: https://docs.docker.com/desktop/install/windows-install/'
    }
    docker info *> $null
    if ($LASTEXITCODE -ne 0) { throw 'the Docker daemon is not reachable (is Docker Desktop running?)' }
    $dockerVersion = (docker version --format '{{.Server.Version}}' 2>$null)
    $composeVersion = (docker compose version --short 2>$null)
    if ($LASTEXITCODE -ne 0 -or -not $composeVersion) {
        throw "Docker Compose v2 is missing ('docker compose')"
    }
    $composeVersion = $composeVersion.Trim().TrimStart('v')
    # Strip suffixes such as "-desktop.1" before comparing.
    $numeric = [version](($composeVersion -split '[-+]')[0])
    if ($numeric -lt $MinComposeVersion) {
        throw "Docker Compose $composeVersion is too old: $MinComposeVersion or newer is needed"
    }
    Write-Step "Docker $dockerVersion, Compose $composeVersion"
}

function Test-Memory {
    try {
        $os = Get-CimInstance -ClassName Win32_OperatingSystem
        $gib = [math]::Floor($os.FreePhysicalMemory / 1MB)  # FreePhysicalMemory is in KiB
    } catch {
        Write-Warning "could not determine the free memory; the platform needs about $MinMemoryGiB GiB"
        return
    }
    if ($gib -lt $MinMemoryGiB) {
        Write-Warning ("only $gib GiB of memory free; the platform needs about $MinMemoryGiB GiB " +
            '(lower SPARK_WORKER_MEMORY in .env, or give Docker Desktop more memory)')
    } else {
        Write-Step "$gib GiB of memory free"
    }
}

function New-RandomBytes([int]$Count) {
    $bytes = New-Object byte[] $Count
    $rng = [System.Security.Cryptography.RandomNumberGenerator]::Create()
    try { $rng.GetBytes($bytes) } finally { $rng.Dispose() }
    return ,$bytes
}

function New-HexSecret {
    return (-join ((New-RandomBytes 24) | ForEach-Object { $_.ToString('x2') }))
}

# A Fernet key is 32 random bytes in URL-safe base64.
function New-FernetKey {
    return [Convert]::ToBase64String((New-RandomBytes 32)).Replace('+', '-').Replace('/', '_')
}

function Get-EnvValue([string]$Key) {
    $line = Get-Content -Path $EnvFile | Where-Object { $_ -like "$Key=*" } | Select-Object -Last 1
    if ($null -eq $line) { return '' }
    return $line.Substring($Key.Length + 1)
}

function Set-EnvValue([string]$Key, [string]$Value) {
    $lines = @(Get-Content -Path $EnvFile)
    $found = $false
    $lines = $lines | ForEach-Object {
        if ($_ -like "$Key=*") { $found = $true; "$Key=$Value" } else { $_ }
    }
    if (-not $found) { $lines += "$Key=$Value" }
    # UTF-8 without BOM and LF endings: Compose and the containers read this file too.
    $text = ($lines -join "`n") + "`n"
    [System.IO.File]::WriteAllText($EnvFile, $text, (New-Object System.Text.UTF8Encoding $false))
}

# An API key named admin: its SHA-256 goes to .env, the key itself to var/api-key.
function New-ApiKeyEntry {
    $key = New-HexSecret
    New-Item -ItemType Directory -Force -Path 'var' | Out-Null
    [System.IO.File]::WriteAllText((Join-Path $PSScriptRoot 'var/api-key'), "$key`n")
    $sha = [System.Security.Cryptography.SHA256]::Create()
    $digest = $sha.ComputeHash([System.Text.Encoding]::UTF8.GetBytes($key))
    $hex = -join ($digest | ForEach-Object { $_.ToString('x2') })
    return "admin:$hex"
}

function Initialize-EnvFile {
    $created = $false
    if (Test-Path -Path $EnvFile) {
        Write-Step '.env exists: keeping it (only empty secrets are filled in)'
    } else {
        if (-not (Test-Path -Path '.env.example')) { throw '.env.example is missing' }
        Copy-Item -Path '.env.example' -Destination $EnvFile
        $created = $true
        Write-Step 'created .env from .env.example'
    }
    foreach ($key in $SecretKeys) {
        if (-not (Get-EnvValue $key)) {
            if ($key -eq 'AIRFLOW_FERNET_KEY') { $value = New-FernetKey }
            elseif ($key -eq 'FILMREC_API_KEYS') { $value = New-ApiKeyEntry }
            else { $value = New-HexSecret }
            Set-EnvValue $key $value
            Write-Step "generated $key"
        }
    }
    # Docker Desktop maps bind-mount ownership itself; the images' default uid is right.
    # Services the run leaves out on purpose (as init.sh does), for test-connections.py.
    Set-EnvValue 'FILMREC_NOT_STARTED' $(if ($env:FILMREC_NOT_STARTED) { $env:FILMREC_NOT_STARTED } else { '' })
    if ($created -or -not (Get-EnvValue 'AIRFLOW_UID')) { Set-EnvValue 'AIRFLOW_UID' '50000' }
}

function Initialize-Directories {
    foreach ($dir in @('lakehouse', 'airflow/logs', 'airflow/dags', 'airflow/plugins', 'airflow/config')) {
        New-Item -ItemType Directory -Force -Path $dir | Out-Null
    }
    Write-Step 'directories ready'
}

function Wait-Healthy {
    Write-Step "waiting up to ${WaitSeconds}s for the services to be healthy"
    $deadline = (Get-Date).AddSeconds($WaitSeconds)
    while ($true) {
        # Services still starting or unhealthy; one-shot jobs that exited are done.
        $pending = @(docker compose ps --format '{{.Service}} {{.State}} {{.Health}}' |
            ForEach-Object {
                $fields = $_ -split ' '
                if ($fields[1] -eq 'running' -and ($fields.Count -lt 3 -or $fields[2] -ne 'healthy')) { $fields[0] }
            })
        if ($pending.Count -eq 0) {
            Write-Step 'all running services are healthy'
            return $true
        }
        if ((Get-Date) -ge $deadline) {
            Write-Warning "still not healthy after ${WaitSeconds}s: $($pending -join ', ') (see: docker compose logs <service>)"
            return $false
        }
        Start-Sleep -Seconds 5
    }
}

function Get-EnvOrDefault([string]$Key, [string]$Default) {
    $value = Get-EnvValue $Key
    if ($value) { return $value }
    return $Default
}

function Show-Urls {
    $hostName = Get-EnvOrDefault 'BIND_ADDRESS' 'localhost'
    if ($hostName -eq '0.0.0.0') { $hostName = 'localhost' }
    $airflowUser = Get-EnvOrDefault 'AIRFLOW_ADMIN_USER' 'admin'
    $grafanaUser = Get-EnvOrDefault 'GRAFANA_ADMIN_USER' 'admin'
    Write-Host ''
    Write-Host 'filmrec is up:'
    Write-Host "  API (docs)        http://${hostName}:$(Get-EnvOrDefault 'API_PORT' '8000')/docs"
    Write-Host "  Airflow           http://${hostName}:$(Get-EnvOrDefault 'AIRFLOW_PORT' '8080')   (user $airflowUser, password AIRFLOW_ADMIN_PASSWORD in .env)"
    Write-Host "  MLflow            http://${hostName}:$(Get-EnvOrDefault 'MLFLOW_PORT' '5000')"
    Write-Host "  Spark master      http://${hostName}:$(Get-EnvOrDefault 'SPARK_MASTER_WEBUI_PORT' '8081')"
    Write-Host "  Spark worker      http://${hostName}:$(Get-EnvOrDefault 'SPARK_WORKER_WEBUI_PORT' '8082')"
    Write-Host "  Prometheus        http://${hostName}:$(Get-EnvOrDefault 'PROMETHEUS_PORT' '9090')"
    Write-Host "  Grafana           http://${hostName}:$(Get-EnvOrDefault 'GRAFANA_PORT' '3000')   (user $grafanaUser, password GRAFANA_ADMIN_PASSWORD in .env)"
    Write-Host "  Kafka UI          http://${hostName}:$(Get-EnvOrDefault 'KAFKA_UI_PORT' '8090')   (optional: docker compose --profile ui up -d)"
}

if (-not $NoStart) {
    Test-Docker
    Test-Memory
}
Initialize-EnvFile
Initialize-Directories
if ($NoStart) {
    Write-Step 'prepared; start with: docker compose up -d --build'
    exit 0
}

Write-Step 'building images'
docker compose build
if ($LASTEXITCODE -ne 0) { throw 'docker compose build failed' }
Write-Step 'starting the platform'
docker compose up -d
if ($LASTEXITCODE -ne 0) { throw 'docker compose up failed' }

$healthy = Wait-Healthy
Write-Step 'checking every service at the protocol level'
$python = if (Test-Path '.venv/Scripts/python.exe') { '.venv/Scripts/python.exe' } elseif (Get-Command python -ErrorAction SilentlyContinue) { 'python' } else { 'py' }
& $python test-connections.py --wait $WaitSeconds
if ($LASTEXITCODE -ne 0) { $healthy = $false }
Show-Urls
if ($healthy) { exit 0 } else { exit 1 }
