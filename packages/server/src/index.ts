export { startServer, runServe, type RunningServer } from './server.js';
export { configFromEnv, type ServerConfig } from './config.js';
