// agent-client.mjs: the TypeScript SDK's machine-to-machine providers
// (ClientCredentialsProvider with a client secret, PrivateKeyJwtProvider
// with an RS256 key) against a caddy-mcpauth guarded MCP server: the 401,
// discovery, the client_credentials grant at /token, then a guarded tool
// call (whoami). No browser.
//
// Env: MCP_URL, CLIENT_ID, MODE (secret|pkjwt), CLIENT_SECRET (secret) or
// PRIVATE_KEY_PKCS8 (pkjwt, PEM), SCOPE, NODE_EXTRA_CA_CERTS (the server's CA).
// Prints {"whoami": <the tool's JSON text>} and exits 0, or 1 on failure.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ClientCredentialsProvider, PrivateKeyJwtProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';

const env = (k) => {
  const v = process.env[k];
  if (!v) {
    console.error(`agent-client: ${k} is required`);
    process.exit(2);
  }
  return v;
};
const mcpURL = new URL(env('MCP_URL'));
const clientId = env('CLIENT_ID');
const mode = env('MODE');
const scope = process.env.SCOPE;
const provider = mode === 'secret'
  ? new ClientCredentialsProvider({ clientId, clientSecret: env('CLIENT_SECRET'), scope })
  : new PrivateKeyJwtProvider({ clientId, privateKey: env('PRIVATE_KEY_PKCS8'), algorithm: 'RS256', scope });

const client = new Client({ name: `e2e-agent-${mode}`, version: '1.0.0' });
try {
  await client.connect(new StreamableHTTPClientTransport(mcpURL, { authProvider: provider }));
  const res = await client.callTool({ name: 'whoami', arguments: {} });
  const text = res.content?.find((c) => c.type === 'text')?.text ?? '';
  const tokens = provider.tokens();
  process.stdout.write(JSON.stringify({ whoami: text, has_refresh_token: Boolean(tokens?.refresh_token), token_type: tokens?.token_type }) + '\n');
  await client.close();
} catch (err) {
  console.error(`agent-client: ${err?.stack ?? err}`);
  process.exit(1);
}
