// `grpst serve --inference_conf ... [--server_conf ...]`: the server in the foreground (containers,
// systemd). `grpst start` runs the same command as its daemon, with the hidden daemon options.
import { Option, type Command } from 'commander';
import { positiveInt } from './options.js';

interface ServeOptions {
  inference_conf: string;
  server_conf?: string;
  deploy_path?: string;
  log_file?: string;
  port_file?: string;
  mpi_np: number;
}

export function register(program: Command): void {
  program
    .command('serve')
    .description('run the server in the foreground; SIGTERM drains in-flight requests, then exits 0')
    .requiredOption('--inference_conf <file>', 'inference conf')
    .option('--server_conf <file>', 'server conf')
    .option('--deploy_path <dir>', 'folder that relative conf paths start from (default: the current folder)')
    .option('--mpi_np <n>', 'processes, one per GPU', positiveInt('--mpi_np'), 1)
    .addOption(new Option('--log_file <file>', 'daemon: the log stdout appends to (rotated daily)').hideHelp())
    .addOption(new Option('--port_file <file>', 'daemon: where to write the bound port').hideHelp())
    .action(async (opts: ServeOptions) => {
      const { runServe } = await import('../daemon/serve.js');
      const code = await runServe({
        inferenceConf: opts.inference_conf,
        serverConf: opts.server_conf,
        deployPath: opts.deploy_path,
        logFile: opts.log_file,
        portFile: opts.port_file,
        tpSize: opts.mpi_np,
      });
      process.exit(code);
    });
}
