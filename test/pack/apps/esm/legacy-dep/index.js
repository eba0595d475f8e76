// A CommonJS dependency (a logger, an API client) of an ESM app: it gets the CommonJS build of
// @loopsight/context while the app imported the ESM build. Both builds must read one store.
const { getCorrelationId } = require('@loopsight/context');

exports.correlationId = () => getCorrelationId();
