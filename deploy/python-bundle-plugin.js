// A local Serverless Framework plugin: after `serverless package` zips the source, it runs
// deploy/bundle_dependencies.py to add the Python dependencies, as manylinux wheels for the
// function's runtime and architecture, to that zip. It runs with `package` and `deploy` only:
// serverless-offline runs the handler from the source tree with the local virtualenv.
"use strict"

const { spawnSync } = require("node:child_process")
const path = require("node:path")

class PythonBundlePlugin {
  constructor(serverless) {
    this.serverless = serverless
    this.hooks = {
      "after:package:createDeploymentArtifacts": () => this.bundle(),
    }
  }

  python() {
    // The project's virtualenv when one is active, else python3 on PATH: any Python >= 3.11
    // with pip will do, since pip downloads wheels for Lambda's Python, not for its own.
    if (process.env.PYTHON) return process.env.PYTHON
    if (process.env.VIRTUAL_ENV) return path.join(process.env.VIRTUAL_ENV, "bin", "python")
    return "python3"
  }

  bundle() {
    const { service, serviceDir } = this.serverless
    const { provider } = service
    if (service.package.individually) {
      throw new this.serverless.classes.Error("python-bundle-plugin expects one zip for the service")
    }
    const artifact = path.resolve(serviceDir, service.package.artifact)
    const runtime = provider.runtime || ""
    const match = /^python(3\.\d+)$/.exec(runtime)
    if (!match) {
      throw new this.serverless.classes.Error(`python-bundle-plugin: runtime ${runtime} is not python3.N`)
    }
    const result = spawnSync(
      this.python(),
      [
        path.join(__dirname, "bundle_dependencies.py"),
        artifact,
        "--python-version",
        match[1],
        "--architecture",
        provider.architecture || "x86_64",
      ],
      { stdio: "inherit", cwd: serviceDir },
    )
    if (result.error) throw result.error
    if (result.status !== 0) {
      throw new this.serverless.classes.Error(
        `bundle_dependencies.py failed with status ${result.status}`,
      )
    }
  }
}

module.exports = PythonBundlePlugin
