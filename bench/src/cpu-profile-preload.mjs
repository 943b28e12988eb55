// `node --import` preload for processes whose command line the bench does not choose (the
// mesh's services): Node 20 refuses --cpu-prof in NODE_OPTIONS, so this starts V8's profiler
// through the inspector and writes `<BENCH_CPU_PROF_DIR>/<pid>.cpuprofile` when the process
// exits (a service exits after its SIGTERM drain). The in-process inspector session answers
// synchronously, so the exit handler can still write the file.
import { mkdirSync, writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { join } from "node:path";

const dir = process.env.BENCH_CPU_PROF_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post("Profiler.enable");
  session.post("Profiler.setSamplingInterval", { interval: 1000 });
  session.post("Profiler.start");
  process.on("exit", () => {
    session.post("Profiler.stop", (err, res) => {
      if (err || !res) return;
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `${process.pid}.cpuprofile`), JSON.stringify(res.profile));
    });
  });
}
