// Benchmark peer: POST /api/livekit/token the way the original NestJS backend served it
// (express platform, ValidationPipe over a class-validator DTO, passport-jwt guard, RBAC guard,
// livekit-server-sdk AccessToken). One process, as the original ran.
import 'reflect-metadata';
import { Module, ValidationPipe } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { PassportModule } from '@nestjs/passport';
import { PEER_CONFIG, loadConfig } from './config';
import { JwtStrategy } from './jwt.strategy';
import { LivekitController } from './livekit.controller';
import { LivekitService } from './livekit.service';

const config = loadConfig();

@Module({
  imports: [PassportModule],
  controllers: [LivekitController],
  providers: [{ provide: PEER_CONFIG, useValue: config }, JwtStrategy, LivekitService],
})
class AppModule {}

async function bootstrap(): Promise<void> {
  const app = await NestFactory.create(AppModule, { logger: ['error', 'warn', 'log'] });
  app.useGlobalPipes(new ValidationPipe({ transform: true }));
  app.enableShutdownHooks();
  await app.listen(config.listenPort, config.listenHost);
  process.stdout.write(`nest peer listening on ${config.listenHost}:${config.listenPort}\n`);
}

void bootstrap();
