import type { RequestRecord } from '@loopsight/core';
import { LoopsightModule, Monitor } from '@loopsight/nestjs';
import { Controller, Get, type INestApplication, Module, Param, VersioningType } from '@nestjs/common';
import { RouterModule } from '@nestjs/core';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Platform, startNest } from '../../../test-support/nest/apps.js';

@Controller('cats')
class CatsController {
  @Get(':id') one(@Param('id') id: string) {
    return { id };
  }
  @Get(':id/toys/:toy') toy() {
    return {};
  }
}

@Controller({ path: 'dogs', version: '2' })
class DogsV2Controller {
  @Get(':id') one() {
    return { v: 2 };
  }
}

@Controller('members')
class MembersController {
  @Get(':member') one() {
    return {};
  }
}

@Module({ controllers: [MembersController] })
class OrgsModule {}

@Controller('health')
class HealthController {
  @Get() get() {
    return { ok: true };
  }
}

describe.each<Platform>(['express', 'fastify'])('nest 11 %s: route templates from Nest', (platform) => {
  let app: INestApplication;
  let url: string;
  const records: RequestRecord[] = [];
  beforeAll(async () => {
    app = await startNest(
      platform,
      {
        imports: [
          LoopsightModule.forRoot({ promises: false, onReport: () => {} }),
          OrgsModule,
          RouterModule.register([{ path: 'orgs/:org', module: OrgsModule }]),
        ],
        controllers: [CatsController, DogsV2Controller, HealthController],
      },
      undefined,
      (nest) => {
        nest.setGlobalPrefix('api', { exclude: ['health'] });
        nest.enableVersioning({ type: VersioningType.URI, defaultVersion: '1' });
      },
    );
    url = (await app.getUrl()).replace('[::1]', '127.0.0.1');
    app.get(Monitor).on('request', (r) => records.push(r));
  });
  afterAll(() => app.close());

  async function routeOf(path: string): Promise<{ status: number; route: string | undefined }> {
    records.length = 0;
    const res = await request(`${url}${path}`);
    await res.body.dump();
    for (let i = 0; i < 40 && records.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
    return { status: res.statusCode, route: records[0]?.route };
  }

  it.each([
    ['/api/v1/cats/7', '/api/v1/cats/:id'],
    ['/api/v1/cats/7/toys/ball', '/api/v1/cats/:id/toys/:toy'],
    ['/api/v2/dogs/rex', '/api/v2/dogs/:id'],
    ['/api/v1/orgs/acme/members/ann', '/api/v1/orgs/:org/members/:member'],
    ['/v1/health', '/v1/health'],
  ])('%s is labelled %s', async (path, template) => {
    expect(await routeOf(path)).toEqual({ status: 200, route: template });
  });

  it('labels a path no route matched with no route, and never the path', async () => {
    expect(await routeOf('/api/v3/dogs/rex')).toEqual({ status: 404, route: undefined });
  });
});
