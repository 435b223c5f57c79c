// `grpst serve --inference_conf ... [--server_conf ...]`: the server in the foreground (containers,
// systemd). `grpst start` runs the same command as its daemon, with the hidden daemon options.
// `grpst serve --model_dir DIR` serves a folder with every setting at its default, no conf needed.
import { InvalidArgumentError, Option, type Command } from 'commander';
import { badInput } from '../util/errors.js';
import { positiveInt } from './options.js';

interface ServeOptions {
  inference_conf?: string;
  model_dir?: string;
  served_model_name?: string;
  device?: 'cpu' | 'cuda' | 'auto';
  host?: string;
  port?: number;
  server_conf?: string;
  deploy_path?: string;
  log_file?: string;
  port_file?: string;
  mpi_np: number;
}

export function register(program: Command): void {
  program
    .command('serve')
    .description('run the server in the foreground (a conf, or --model_dir alone); SIGTERM drains in-flight requests, then exits 0')
    .option('--inference_conf <file>', 'inference conf')
    .option('--model_dir <dir>', 'serve this engine folder (or Hugging Face checkpoint) with default settings, instead of --inference_conf')
    .option('--served_model_name <name>', 'with --model_dir: the model id clients send (default: qwen3)', modelName)
    .addOption(new Option('--device <device>', 'with --model_dir: where the model runs (default: auto)').choices(['cpu', 'cuda', 'auto']))
    .option('--server_conf <file>', 'server conf')
    .option('--host <address>', "address to listen on (default: the server conf's, else 0.0.0.0)")
    .option('--port <n>', "port to listen on, 0 for any free one (default: the server conf's, else 9997)", portArg)
    .option('--deploy_path <dir>', 'folder that relative conf paths start from (default: the current folder)')
    .option('--mpi_np <n>', 'processes, one per GPU', positiveInt('--mpi_np'), 1)
    .addOption(new Option('--log_file <file>', 'daemon: the log stdout appends to (rotated daily)').hideHelp())
    .addOption(new Option('--port_file <file>', 'daemon: where to write the bound port').hideHelp())
    .action(async (opts: ServeOptions) => {
      checkConfChoice(opts);
      const { runServe } = await import('../daemon/serve.js');
      const code = await runServe({
        inferenceConf: opts.inference_conf,
        modelDir: opts.model_dir,
        servedModelName: opts.served_model_name,
        device: opts.device,
        listen: { host: opts.host, port: opts.port },
        serverConf: opts.server_conf,
        deployPath: opts.deploy_path,
        logFile: opts.log_file,
        portFile: opts.port_file,
        tpSize: opts.mpi_np,
      });
      process.exit(code);
    });
}

/** One source of the model's settings: a conf file, or a folder served with the defaults. */
function checkConfChoice(opts: ServeOptions): void {
  if (opts.inference_conf && opts.model_dir) {
    throw badInput('--inference_conf and --model_dir are both given', 'pass one: --model_dir serves a folder with default settings, --inference_conf applies a conf');
  }
  if (!opts.inference_conf && !opts.model_dir) {
    throw badInput('grpst serve needs --inference_conf FILE or --model_dir DIR', 'e.g. grpst serve --model_dir /tmp/Qwen3-8B/engine');
  }
  for (const [flag, value] of [['--served_model_name', opts.served_model_name], ['--device', opts.device]] as const) {
    if (value !== undefined && opts.inference_conf) {
      throw badInput(`${flag} goes with --model_dir`, `set ${flag.slice(2)} under models[0].inferer_args in ${opts.inference_conf}`);
    }
  }
}

// Refused here: an empty name would fail the conf's schema, whose fix names a conf no one wrote.
function modelName(value: string): string {
  if (value === '') throw new InvalidArgumentError('--served_model_name takes the model id clients send, got an empty one');
  return value;
}

function portArg(value: string): number {
  const n = Number(value);
  if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n > 65535) throw new InvalidArgumentError(`--port takes a port from 0 to 65535, got "${value}"`);
  return n;
}
