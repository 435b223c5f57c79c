// `grpst start ./server.mar --inference_conf=... [--server_conf=...] [--name my_grps] [--mpi_np N] [--timeout S]`
import type { Command } from 'commander';
import { defaultName, grpstHome } from '../config/paths.js';
import { positiveInt, positiveSeconds } from './options.js';

interface StartOptions {
  inference_conf?: string;
  server_conf?: string;
  name: string;
  mpi_np: number;
  timeout: number;
}

export function register(program: Command): void {
  program
    .command('start')
    .description('deploy server.mar into $GRPST_HOME/<name> and start it as a daemon')
    .argument('<mar>', 'archive made by `grpst archive`')
    .option('--inference_conf <file>', "inference conf: a path inside the archive, or a file here (default: the archive's conf/inference.yml, or its only conf/inference*.yml)")
    .option('--server_conf <file>', 'server conf (default: conf/server.yml of the archive)')
    .option('--name <name>', 'server name', defaultName)
    .option('--mpi_np <n>', 'processes, one per GPU', positiveInt('--mpi_np'), 1)
    .option('--timeout <seconds>', 'how long to wait for /health', positiveSeconds('--timeout'), 300)
    .action(async (mar: string, opts: StartOptions) => {
      const [{ startServerDaemon }, { createProgress }] = await Promise.all([import('../daemon/start.js'), import('./progress.js')]);
      const progress = createProgress();
      try {
        const { state, url, modelId, authRequired } = await startServerDaemon({
          mar,
          inferenceConf: opts.inference_conf,
          serverConf: opts.server_conf,
          name: opts.name,
          mpiNp: opts.mpi_np,
          timeoutS: opts.timeout,
          home: grpstHome(),
          progress,
        });
        progress.succeed(`${state.name} is running`);
        const ports = state.rpcPort ? `${state.httpPort},${state.rpcPort}` : `${state.httpPort}`;
        process.stdout.write(
          [
            `PORT(HTTP,RPC) ${ports}  NAME ${state.name}  PID ${state.pid}  DEPLOY_PATH ${state.deployPath}`,
            // max_tokens: a model that never says its end token (random weights, a base model) would
            // otherwise write to the end of its context; the key header only where auth is on.
            `  chat:  curl ${url}/v1/chat/completions -H "Content-Type: application/json"${authRequired ? ' -H "Authorization: Bearer <api key>"' : ''} -d '{"model":"${modelId}","messages":[{"role":"user","content":"Hello"}],"max_tokens":64}'`,
            `  logs:  grpst logs ${state.name} -f`,
            `  stop:  grpst stop ${state.name}`,
            '',
          ].join('\n'),
        );
      } catch (err) {
        progress.fail('');
        throw err;
      }
    });
}
