export { createDashboard } from './dashboard.js';
export type {
  Dashboard,
  DashboardOptions,
  FastifyInstanceLike,
  FastifyReplyLike,
  FastifyRequestLike,
  KoaContextLike,
} from './types.js';
