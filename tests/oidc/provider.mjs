// A real OpenID provider for the tests (tests/e2e/oidc.rs): the certified
// `oidc-provider` npm package, installed by `cargo xtask test` under
// target/oidc-provider (its directory in $CUSTODY_OIDC_PROVIDER).
//
//   node provider.mjs serve CONFIG.json   start it; prints `ready ISSUER`
//   node provider.mjs keygen              print {"private", "public": JWK, "public_pem"} (RSA 2048)
//   node provider.mjs sign                sign stdin's {header, claims, key | hmac_secret}
//
// CONFIG: {"port", "clients": [...], "keys": [private JWKs], "accounts_file"}.
// The accounts file ({"<sub>": {claims}}) is read at every sign-in, so a
// test changes a user's groups by rewriting it. Signing in needs no form:
// GET /auth with `login_hint=<sub>` is logged in as that account by the
// tiny interaction below, and consent is granted (a cookie-keeping client
// follows the redirects to the client's redirect_uri with the code).
// Without a login_hint the interaction is a form asking for the account:
// the browser tests (tests/e2e/console_browser.rs) sign in through it.

import { createHmac, createPrivateKey, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const b64 = (data) => Buffer.from(data).toString('base64url');

async function loadProvider() {
  const root = process.env.CUSTODY_OIDC_PROVIDER;
  if (!root) {
    throw new Error('CUSTODY_OIDC_PROVIDER is not set: run `cargo xtask test`, or `npm install --prefix target/oidc-provider oidc-provider@9.13.3` and export CUSTODY_OIDC_PROVIDER=target/oidc-provider');
  }
  const entry = join(root, 'node_modules', 'oidc-provider', 'lib', 'index.js');
  return (await import(pathToFileURL(entry).href)).default;
}

function keygen() {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const kid = randomUUID();
  const priv = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
  const pub = { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
  const pem = publicKey.export({ format: 'pem', type: 'spki' });
  process.stdout.write(JSON.stringify({ private: priv, public: pub, public_pem: pem }) + '\n');
}

function signToken() {
  const input = JSON.parse(readFileSync(0, 'utf8'));
  const data = `${b64(JSON.stringify(input.header))}.${b64(JSON.stringify(input.claims))}`;
  let signature;
  if (input.hmac_secret !== undefined) {
    signature = createHmac('sha256', input.hmac_secret).update(data).digest();
  } else {
    const key = createPrivateKey({ key: input.key, format: 'jwk' });
    signature = sign('sha256', Buffer.from(data), key);
  }
  process.stdout.write(`${data}.${b64(signature)}\n`);
}

async function serve(configPath) {
  const Provider = await loadProvider();
  const config = JSON.parse(readFileSync(configPath, 'utf8'));
  const issuer = `http://127.0.0.1:${config.port}`;
  const accounts = () => JSON.parse(readFileSync(config.accounts_file, 'utf8'));
  const provider = new Provider(issuer, {
    clients: config.clients,
    jwks: { keys: config.keys },
    // Profile claims (with groups) in the ID token itself.
    conformIdTokenClaims: false,
    claims: {
      openid: ['sub'],
      profile: ['preferred_username', 'name', 'groups'],
      email: ['email'],
    },
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(ctx, id) {
      const claims = accounts()[id];
      if (!claims) return undefined;
      return { accountId: id, async claims() { return { sub: id, ...claims }; } };
    },
    async loadExistingGrant(ctx) {
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope('openid profile email');
      await grant.save();
      return grant;
    },
    ttl: { Session: 60, Interaction: 60, Grant: 60, AuthorizationCode: 60, IdToken: 3600, AccessToken: 3600 },
  });
  provider.on('server_error', (ctx, error) => console.error('server_error', error));
  // The tiny login. With the authorization request's login_hint, the
  // account is the hint and no page is shown (the HTTP tests). Without
  // one, a sign-in form asks for the account (the browser tests type it),
  // and its POST finishes the interaction.
  provider.use(async (ctx, next) => {
    const match = /^\/interaction\/([^/]+)$/.exec(ctx.path);
    if (!match) return next();
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    let login = details.params.login_hint;
    if (!login && ctx.method === 'POST') {
      const body = await new Promise((resolve, reject) => {
        let text = '';
        ctx.req.setEncoding('utf8');
        ctx.req.on('data', (chunk) => { text += chunk; });
        ctx.req.on('end', () => resolve(text));
        ctx.req.on('error', reject);
      });
      login = new URLSearchParams(body).get('login');
    } else if (!login) {
      ctx.type = 'html';
      ctx.body = `<!DOCTYPE html><html lang="en"><head><title>Test identity provider</title></head>
<body><main><h1>Test identity provider</h1>
<form method="post" action="/interaction/${match[1]}">
<label for="login">Account</label> <input id="login" name="login" autocomplete="username">
<button type="submit" id="submit">Sign in</button></form></main></body></html>`;
      return undefined;
    }
    if (!login || !accounts()[login]) {
      ctx.status = 400;
      ctx.body = 'unknown account';
      return undefined;
    }
    return provider.interactionFinished(ctx.req, ctx.res, { login: { accountId: login } }, { mergeWithLastSubmission: false });
  });
  provider.listen(config.port, '127.0.0.1', () => {
    process.stdout.write(`ready ${issuer}\n`);
  });
}

const [mode, argument] = process.argv.slice(2);
if (mode === 'keygen') keygen();
else if (mode === 'sign') signToken();
else if (mode === 'serve') await serve(argument);
else {
  console.error('usage: provider.mjs serve CONFIG.json | keygen | sign');
  process.exit(2);
}
