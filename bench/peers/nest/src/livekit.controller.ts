import { Body, Controller, Get, Header, HttpCode, Post, Req, UseGuards } from '@nestjs/common';
import type { Request } from 'express';
import { CreateTokenDto } from './create-token.dto';
import { AuthenticatedUser, JwtAuthGuard } from './jwt.strategy';
import { LivekitService, TokenResponse } from './livekit.service';
import { JoinChannelGuard } from './rbac.guard';

@Controller('api/livekit')
export class LivekitController {
  constructor(private readonly livekit: LivekitService) {}

  @Post('token')
  @HttpCode(200)
  @Header('Cache-Control', 'no-store')
  @UseGuards(JwtAuthGuard, JoinChannelGuard)
  generateToken(
    @Body() dto: CreateTokenDto,
    @Req() request: Request & { user: AuthenticatedUser },
  ): Promise<TokenResponse> {
    return this.livekit.generateToken(dto, request.user);
  }

  @Get('connection-info')
  @UseGuards(JwtAuthGuard)
  connectionInfo() {
    return this.livekit.connectionInfo();
  }

  @Get('health')
  health() {
    return { status: 'healthy', configured: true };
  }
}
